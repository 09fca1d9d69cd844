package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseSignatureInput(t *testing.T) {
	in := `sig1=("@method" "@path" "content-type" "digest");keyid="k-1";created=1700000000;nonce="0123456789";expires=1700000060, sig2=();alg="ed25519"`
	ms, err := ParseSignatureInput(in)
	if err != nil {
		t.Fatalf("ParseSignatureInput: %v", err)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d members, want 2", len(ms))
	}
	m := ms[0]
	if m.Label != "sig1" {
		t.Errorf("label = %q, want sig1", m.Label)
	}
	if got, want := strings.Join(m.Components, ","), "@method,@path,content-type,digest"; got != want {
		t.Errorf("components = %q, want %q", got, want)
	}
	want := Params{KeyID: "k-1", Created: 1700000000, Nonce: "0123456789", Expires: 1700000060}
	if m.Params != want {
		t.Errorf("params = %+v, want %+v", m.Params, want)
	}
	if got, want := m.Raw, `("@method" "@path" "content-type" "digest");keyid="k-1";created=1700000000;nonce="0123456789";expires=1700000060`; got != want {
		t.Errorf("raw = %q, want %q", got, want)
	}
	if ms[1].Label != "sig2" || len(ms[1].Components) != 0 || ms[1].Params.Alg != "ed25519" {
		t.Errorf("second member = %+v", ms[1])
	}
}

func TestParseSignatureInputRejects(t *testing.T) {
	for _, in := range []string{
		``,
		`sig1`,
		`sig1=`,
		`sig1=("@method"`,
		`sig1=(@method)`,
		`sig1=("@method""@path")`,
		`sig1=("@method";sf)`,
		`sig1=("a\x01")`,
		`Sig1=("@method")`,
		`sig1=("@method");created=abc`,
		`sig1=("@method");created=1.5`,
		`sig1=("@method") sig2=()`,
		`sig1=("@method");keyid="unterminated`,
	} {
		if _, err := ParseSignatureInput(in); !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseSignatureInput(%q) error = %v, want ErrSyntax or ErrUnsupported", in, err)
		}
	}
}

func TestParseSignature(t *testing.T) {
	got, err := ParseSignature(`sig1=:AQID:, sig2=:BAU=:;x=1`)
	if err != nil {
		t.Fatalf("ParseSignature: %v", err)
	}
	if string(got["sig1"]) != "\x01\x02\x03" || string(got["sig2"]) != "\x04\x05" {
		t.Errorf("got %q", got)
	}
	for _, in := range []string{``, `sig1=AQID`, `sig1=:AQID`, `sig1=:!!:`} {
		if _, err := ParseSignature(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseSignature(%q) error = %v, want ErrSyntax", in, err)
		}
	}
}

func TestFormatMemberRoundTrip(t *testing.T) {
	p := Params{KeyID: `k"1`, Created: 10, Nonce: "0000000001", Expires: 70}
	comps := []string{"@method", "digest"}
	s := FormatMember(comps, p)
	if want := `("@method" "digest");keyid="k\"1";created=10;nonce="0000000001";expires=70`; s != want {
		t.Fatalf("FormatMember = %s, want %s", s, want)
	}
	ms, err := ParseSignatureInput("sig1=" + s)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Params != p || ms[0].Raw != s {
		t.Errorf("round trip = %+v, want %+v", ms[0], p)
	}
}

// TestBase checks both styles against hand-written base strings.
func TestBase(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "https://relay.example/webhooks/upvest?a=1&b=%20", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Add("X-Multi", " one ")
	r.Header.Add("X-Multi", "two")
	comps := []string{"@method", "@path", "@query", "@authority", "content-type", "x-multi", "host"}
	member := `("@method" "@path" "@query" "@authority" "content-type" "x-multi" "host");keyid="k"`

	got, err := Base(r, comps, member, Unquoted)
	if err != nil {
		t.Fatal(err)
	}
	want := "@method: POST\n" +
		"@path: /webhooks/upvest\n" +
		"@query: ?a=1&b=%20\n" +
		"@authority: relay.example\n" +
		"content-type: application/json\n" +
		"x-multi: one, two\n" +
		"host: relay.example\n" +
		"@signature-params: " + member
	if string(got) != want {
		t.Errorf("unquoted base:\n%s\nwant:\n%s", got, want)
	}

	got, err = Base(r, comps[:2], `("@method" "@path")`, Quoted)
	if err != nil {
		t.Fatal(err)
	}
	want = "\"@method\": POST\n\"@path\": /webhooks/upvest\n\"@signature-params\": (\"@method\" \"@path\")"
	if string(got) != want {
		t.Errorf("quoted base:\n%s\nwant:\n%s", got, want)
	}

	if _, err := Base(r, []string{"digest"}, "()", Quoted); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("missing header: err = %v, want ErrMissingComponent", err)
	}
	if _, err := Base(r, []string{"@bogus"}, "()", Quoted); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown derived: err = %v, want ErrUnsupported", err)
	}
}

func TestSignVerify(t *testing.T) {
	keys := map[string]crypto.Signer{
		"P-521":   mustECDSA(t, elliptic.P521()),
		"P-256":   mustECDSA(t, elliptic.P256()),
		"Ed25519": mustEd25519(t),
	}
	for name, key := range keys {
		for _, style := range []Style{Quoted, Unquoted} {
			t.Run(name+"/"+style.String(), func(t *testing.T) {
				body := []byte(`{"payload":[]}`)
				r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Digest", Digest(body))
				s := &Signer{Key: key, KeyID: "kid", Style: style, Now: func() time.Time { return time.Unix(1700000000, 0) }}
				comps := []string{"@method", "@path", "content-type", "digest"}
				if err := s.Sign(r, comps); err != nil {
					t.Fatal(err)
				}
				ms, err := ParseSignatureInput(r.Header.Get("Signature-Input"))
				if err != nil {
					t.Fatal(err)
				}
				m := ms[0]
				if m.Params.KeyID != "kid" || m.Params.Created != 1700000000 || m.Params.Expires != 1700000060 || len(m.Params.Nonce) != 10 {
					t.Errorf("params = %+v", m.Params)
				}
				sigs, err := ParseSignature(r.Header.Get("Signature"))
				if err != nil {
					t.Fatal(err)
				}
				base, err := Base(r, m.Components, m.Raw, style)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyBase(key.Public(), base, sigs[Label]); err != nil {
					t.Fatalf("VerifyBase: %v", err)
				}
				other := Quoted
				if style == Quoted {
					other = Unquoted
				}
				base2, _ := Base(r, m.Components, m.Raw, other)
				if err := VerifyBase(key.Public(), base2, sigs[Label]); !errors.Is(err, ErrVerification) {
					t.Errorf("verify under the other style: err = %v, want ErrVerification", err)
				}
			})
		}
	}
}

// TestVerifyRawRS checks the raw r‖s fallback against a signature made
// directly with crypto/ecdsa.
func TestVerifyRawRS(t *testing.T) {
	k := mustECDSA(t, elliptic.P521()).(*ecdsa.PrivateKey)
	base := []byte("\"@method\": POST\n\"@signature-params\": (\"@method\")")
	sum := sha512.Sum512(base)
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 132)
	r.FillBytes(raw[:66])
	s.FillBytes(raw[66:])
	if err := VerifyBase(&k.PublicKey, base, raw); err != nil {
		t.Errorf("raw r||s: %v", err)
	}
	raw[10] ^= 1
	if err := VerifyBase(&k.PublicKey, base, raw); !errors.Is(err, ErrVerification) {
		t.Errorf("tampered raw r||s: err = %v, want ErrVerification", err)
	}
	if err := VerifyBase(&k.PublicKey, base, nil); !errors.Is(err, ErrVerification) {
		t.Errorf("empty signature: err = %v", err)
	}
}

func TestCheckDigest(t *testing.T) {
	body := []byte("hello")
	tests := []struct {
		name   string
		header map[string]string
		want   error
	}{
		{"digest ok", map[string]string{"Digest": Digest(body)}, nil},
		{"digest lower-case alg", map[string]string{"Digest": strings.Replace(Digest(body), "SHA-256", "sha-256", 1)}, nil},
		{"content-digest ok", map[string]string{"Content-Digest": ContentDigest(body)}, nil},
		{"both ok", map[string]string{"Content-Digest": ContentDigest(body), "Digest": Digest(body)}, nil},
		{"added content-digest cannot mask a wrong digest", map[string]string{"Content-Digest": ContentDigest(body), "Digest": Digest([]byte("x"))}, ErrDigestMismatch},
		{"added digest cannot mask a wrong content-digest", map[string]string{"Content-Digest": ContentDigest([]byte("x")), "Digest": Digest(body)}, ErrDigestMismatch},
		{"digest mismatch", map[string]string{"Digest": Digest([]byte("other"))}, ErrDigestMismatch},
		{"content-digest mismatch", map[string]string{"Content-Digest": ContentDigest([]byte("other"))}, ErrDigestMismatch},
		{"unsupported alg only", map[string]string{"Digest": "MD5=XUFAKrxLKna5cZ2REBfFkg=="}, ErrNoDigest},
		{"none", map[string]string{}, ErrNoDigest},
		{"garbage", map[string]string{"Content-Digest": "sha-512=abc"}, ErrSyntax},
		{"bad base64", map[string]string{"Digest": "SHA-256=!!!"}, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			err := CheckDigest(h, body)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("CheckDigest = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNonce(t *testing.T) {
	for range 100 {
		n, err := Nonce(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(n) != 10 || strings.Trim(n, "0123456789") != "" {
			t.Fatalf("nonce %q is not 10 digits", n)
		}
	}
}

func FuzzParseSignatureInput(f *testing.F) {
	f.Add(`sig1=("@method" "@path" "digest");keyid="k";created=1;nonce="0123456789";expires=61`)
	f.Add(`sig1=();alg="ecdsa-p256-sha256", sig2=("a" "b");x=?1;y=1.5;z=:AA==:;t=tok/en`)
	f.Add(`sig1=("@query");created=-5`)
	f.Add(`a=(`)
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ParseSignatureInput(in)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !strings.Contains(in, m.Raw) {
				t.Fatalf("Raw %q is not a substring of the input", m.Raw)
			}
			// Re-serializing what was parsed must parse to the same thing.
			again, err := ParseSignatureInput(m.Label + "=" + FormatMember(m.Components, m.Params))
			if err != nil {
				t.Fatalf("re-parse of formatted member failed: %v", err)
			}
			if strings.Join(again[0].Components, "\x00") != strings.Join(m.Components, "\x00") || again[0].Params != m.Params {
				t.Fatalf("round trip changed member: %+v vs %+v", again[0], m)
			}
		}
	})
}

func mustECDSA(t *testing.T, c elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEd25519(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
