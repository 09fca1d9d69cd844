package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/httpsig"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/verify"
)

// TestVerifyUpvestRequests checks requests signed the way Upvest's draft-06
// and draft-15 signers sign them, with keys served over HTTP as a JWK set.
func TestVerifyUpvestRequests(t *testing.T) {
	p521, p256, p384 := ecKey(t, elliptic.P521()), ecKey(t, elliptic.P256()), ecKey(t, elliptic.P384())
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{
		"upvest-p521": &p521.PublicKey, "p256": &p256.PublicKey, "p384": &p384.PublicKey, "ed": edPub,
	}))
	keys, err := verify.NewRemoteKeys(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	runKeys(t, keys)
	testkit.Eventually(t, 10*time.Second, "keys loaded", keys.Ready)
	v := newVerifier(t, keys)

	tests := []struct {
		name string
		d    delivery
		edit func(r *http.Request)
	}{
		{name: "draft-06 P-521", d: delivery{key: p521, kid: "upvest-p521"}},
		{name: "draft-15 P-521", d: delivery{key: p521, kid: "upvest-p521", draft15: true}},
		{name: "draft-06 P-256 hashed with SHA-512", d: delivery{key: p256, kid: "p256"}},
		{name: "draft-15 P-256", d: delivery{key: p256, kid: "p256", draft15: true}},
		{name: "draft-06 P-384", d: delivery{key: p384, kid: "p384"}},
		{name: "draft-06 Ed25519", d: delivery{key: edKey, kid: "ed"}},
		{name: "draft-15 Ed25519", d: delivery{key: edKey, kid: "ed", draft15: true}},
		{name: "draft-06 with a query", d: delivery{key: p521, kid: "upvest-p521", url: "https://relay.example/webhooks/upvest?tenant=a%20b&x=1"}},
		{name: "draft-06 empty body", d: delivery{key: p521, kid: "upvest-p521", body: []byte{}}},
		{
			name: "draft-15 without its version header falls back to quoted",
			d:    delivery{key: p521, kid: "upvest-p521", draft15: true},
			edit: func(r *http.Request) { r.Header.Del("Upvest-Signature-Version") },
		},
		{
			name: "draft-06 with a misleading version header falls back to unquoted",
			d:    delivery{key: p521, kid: "upvest-p521"},
			edit: func(r *http.Request) { r.Header.Set("Upvest-Signature-Version", "15") },
		},
		{
			name: "created a little in the future",
			d:    delivery{key: p521, kid: "upvest-p521", created: t0.Add(verify.DefaultClockSkew)},
		},
		{
			name: "expired within the clock skew",
			d:    delivery{key: p521, kid: "upvest-p521", created: t0.Add(-time.Minute - verify.DefaultClockSkew)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.d.body == nil {
				tt.d.body = testBody
			}
			r := upvestRequest(t, tt.d)
			if tt.edit != nil {
				tt.edit(r)
			}
			if err := v.Verify(context.Background(), r, tt.d.body); err != nil {
				t.Errorf("Verify: got %v, want nil", err)
			}
		})
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("JWKS requests: got %d, want 1", got)
	}
}

// TestVerifyOverHTTP sends signed packages through a real HTTP round trip,
// so the server sees the headers net/http gives it (Content-Length,
// Accept-Encoding, canonicalised names) rather than the ones the test set.
func TestVerifyOverHTTP(t *testing.T) {
	key := ecKey(t, elliptic.P521())
	v := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"k1": &key.PublicKey}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := v.Verify(r.Context(), r, body); err != nil {
			http.Error(w, verify.Reason(err), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	for _, draft15 := range []bool{false, true} {
		t.Run(fmt.Sprintf("draft15=%v", draft15), func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/upvest", bytes.NewReader(testBody))
			if err != nil {
				t.Fatal(err)
			}
			sign(t, r, delivery{key: key, kid: "k1", draft15: draft15, body: testBody})
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status: got %d (%s), want 200", resp.StatusCode, strings.TrimSpace(string(msg)))
			}
		})
	}
}

// TestVerifyHandBuilt checks vectors whose signature base is written out
// literally here and signed with crypto/ecdsa directly, independently of
// httpsig's base builder and signer; each has a twin signed over a base
// that differs in one byte, which must fail.
func TestVerifyHandBuilt(t *testing.T) {
	key := ecKey(t, elliptic.P521())
	v := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"k1": &key.PublicKey}))
	created := t0.Unix()
	sha256sum, sha512sum := sha256.Sum256(testBody), sha512.Sum512(testBody)
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(sha256sum[:])
	contentDigest := "sha-512=:" + base64.StdEncoding.EncodeToString(sha512sum[:]) + ":"
	params06 := fmt.Sprintf(`("@method" "@path" "content-type" "digest");keyid="k1";created=%d;nonce="0123456789";expires=%d`, created, created+60)
	params15 := fmt.Sprintf(`("content-type" "@method" "@path" "content-digest");keyid="k1";created=%d;nonce="9876543210";expires=%d`, created, created+60)

	tests := []struct {
		name    string
		base    string
		params  string
		headers map[string]string
		raw     bool // raw r‖s instead of DER
	}{
		{
			name: "draft-06 unquoted base, DER",
			base: "@method: POST\n" +
				"@path: /webhooks/upvest\n" +
				"content-type: application/json\n" +
				"digest: " + digest + "\n" +
				"@signature-params: " + params06,
			params:  params06,
			headers: map[string]string{"Content-Type": "application/json", "Digest": digest},
		},
		{
			name: "draft-06 unquoted base, raw r||s",
			base: "@method: POST\n" +
				"@path: /webhooks/upvest\n" +
				"content-type: application/json\n" +
				"digest: " + digest + "\n" +
				"@signature-params: " + params06,
			params:  params06,
			headers: map[string]string{"Content-Type": "application/json", "Digest": digest},
			raw:     true,
		},
		{
			name: "draft-15 quoted base, DER",
			base: `"content-type": application/json` + "\n" +
				`"@method": POST` + "\n" +
				`"@path": /webhooks/upvest` + "\n" +
				`"content-digest": ` + contentDigest + "\n" +
				`"@signature-params": ` + params15,
			params: params15,
			headers: map[string]string{
				"Content-Type": "application/json", "Content-Digest": contentDigest, "Upvest-Signature-Version": "15",
			},
		},
	}
	for _, tt := range tests {
		for _, twin := range []bool{false, true} {
			name := tt.name
			base := tt.base
			if twin {
				name += ", one byte off"
				base = strings.Replace(base, "/webhooks/upvest", "/webhooks/upvesT", 1)
			}
			t.Run(name, func(t *testing.T) {
				sum := sha512.Sum512([]byte(base))
				var sig []byte
				if tt.raw {
					r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
					if err != nil {
						t.Fatal(err)
					}
					sig = make([]byte, 2*66)
					r.FillBytes(sig[:66])
					s.FillBytes(sig[66:])
				} else {
					var err error
					if sig, err = ecdsa.SignASN1(rand.Reader, key, sum[:]); err != nil {
						t.Fatal(err)
					}
				}
				req := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", bytes.NewReader(testBody))
				for k, val := range tt.headers {
					req.Header[k] = []string{val}
				}
				req.Header["Signature-Input"] = []string{"sig1=" + tt.params}
				req.Header["Signature"] = []string{"sig1=:" + base64.StdEncoding.EncodeToString(sig) + ":"}

				err := v.Verify(context.Background(), req, testBody)
				switch {
				case !twin && err != nil:
					t.Errorf("Verify: got %v, want nil", err)
				case twin && !errors.Is(err, verify.ErrBadSignature):
					t.Errorf("Verify: got %v, want %v", err, verify.ErrBadSignature)
				}
			})
		}
	}
}

// TestVerifyRejects produces every sentinel from an otherwise valid request.
func TestVerifyRejects(t *testing.T) {
	key, other := ecKey(t, elliptic.P521()), ecKey(t, elliptic.P521())
	keys := staticKeys(t, map[string]crypto.PublicKey{"k1": &key.PublicKey})
	valid := delivery{key: key, kid: "k1", body: testBody}
	sigOf := func(r *http.Request) []byte {
		m, err := httpsig.ParseSignature(r.Header.Get("Signature"))
		if err != nil {
			t.Fatal(err)
		}
		return m[httpsig.Label]
	}

	tests := []struct {
		name    string
		d       delivery
		signed  func(r *http.Request) // applied to a request signed from d (default valid)
		request func() *http.Request  // instead of d and signed
		body    []byte                // body passed to Verify (default d.body)
		keys    verify.KeySource      // default keys
		want    error
		reason  string
	}{
		{
			name:   "no Signature",
			signed: func(r *http.Request) { r.Header.Del("Signature") },
			want:   verify.ErrNoSignature, reason: "no_signature",
		},
		{
			name:   "no Signature-Input",
			signed: func(r *http.Request) { r.Header.Del("Signature-Input") },
			want:   verify.ErrNoSignature, reason: "no_signature",
		},
		{
			name:   "Signature-Input not a dictionary",
			signed: func(r *http.Request) { r.Header.Set("Signature-Input", `sig1="@method"`) },
			want:   verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name:   "Signature not a byte sequence",
			signed: func(r *http.Request) { r.Header.Set("Signature", "sig1=abc") },
			want:   verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "labels do not match",
			signed: func(r *http.Request) {
				r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), "sig1=", "sig2=", 1))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "no keyid",
			signed: func(r *http.Request) {
				r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `keyid="k1";`, "", 1))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "no created",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				r.Header.Set("Signature-Input", strings.Replace(in, fmt.Sprintf(";created=%d", t0.Unix()), "", 1))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name:   "empty signature",
			signed: func(r *http.Request) { r.Header.Set("Signature", "sig1=::") },
			want:   verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name:   "covered header removed",
			signed: func(r *http.Request) { r.Header.Del("User-Agent") },
			want:   verify.ErrMissingComponent, reason: "missing_component",
		},
		{
			name: "body without a covered digest",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", bytes.NewReader(testBody))
				r.Header.Set("Content-Type", "application/json")
				s := httpsig.Signer{Key: key, KeyID: "k1", Style: httpsig.Unquoted, Now: func() time.Time { return t0 }}
				if err := s.Sign(r, []string{"@method", "@path", "content-type"}); err != nil {
					t.Fatal(err)
				}
				return r
			},
			body: testBody,
			want: verify.ErrNoDigest, reason: "no_digest",
		},
		{
			name:    "covers only the digest",
			request: func() *http.Request { return signedCovering(t, key, "digest") },
			want:    verify.ErrWeakCoverage, reason: "weak_coverage",
		},
		{
			name:    "covers no @path",
			request: func() *http.Request { return signedCovering(t, key, "@method", "digest") },
			want:    verify.ErrWeakCoverage, reason: "weak_coverage",
		},
		{
			name:    "covers no @method",
			request: func() *http.Request { return signedCovering(t, key, "@path", "content-type", "digest") },
			want:    verify.ErrWeakCoverage, reason: "weak_coverage",
		},
		{
			name: "label twice in Signature-Input",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				r.Header.Set("Signature-Input", in+", "+in)
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "label twice in Signature",
			signed: func(r *http.Request) {
				r.Header.Set("Signature", httpsig.FormatSignature(httpsig.Label, []byte("forged"))+", "+r.Header.Get("Signature"))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "label twice over two Signature field lines",
			signed: func(r *http.Request) {
				r.Header.Add("Signature", httpsig.FormatSignature(httpsig.Label, []byte("forged")))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			// Edited after signing: refused for the order of the two
			// times (malformed), before any key is used (bad signature).
			name: "expires before created",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				exp := fmt.Sprintf(";expires=%d", t0.Add(time.Minute).Unix())
				if !strings.Contains(in, exp) {
					t.Fatalf("Signature-Input %q has no %s", in, exp)
				}
				r.Header.Set("Signature-Input", strings.Replace(in, exp, fmt.Sprintf(";expires=%d", t0.Add(-10*time.Second).Unix()), 1))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "digest of an unsupported algorithm only",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", bytes.NewReader(testBody))
				r.Header.Set("Digest", "MD5=Q2hlY2sgSW50ZWdyaXR5IQ==")
				s := httpsig.Signer{Key: key, KeyID: "k1", Style: httpsig.Unquoted, Now: func() time.Time { return t0 }}
				if err := s.Sign(r, []string{"@method", "@path", "digest"}); err != nil {
					t.Fatal(err)
				}
				return r
			},
			body: testBody,
			want: verify.ErrNoDigest, reason: "no_digest",
		},
		{
			name: "body changed",
			body: bytes.Replace(testBody, []byte("FILLED"), []byte("CANCEL"), 1),
			want: verify.ErrDigestMismatch, reason: "digest_mismatch",
		},
		{
			name: "body dropped",
			body: []byte{},
			want: verify.ErrDigestMismatch, reason: "digest_mismatch",
		},
		{
			name: "body changed, with an uncovered Content-Digest to match",
			signed: func(r *http.Request) {
				r.Header.Set("Content-Digest", httpsig.ContentDigest([]byte(`{"payload":[]}`)))
			},
			body: []byte(`{"payload":[]}`),
			want: verify.ErrDigestMismatch, reason: "digest_mismatch",
		},
		{
			name: "unknown keyid",
			d:    delivery{key: key, kid: "k2", body: testBody},
			want: verify.ErrUnknownKey, reason: "unknown_key",
		},
		{
			name: "signed by another key",
			d:    delivery{key: other, kid: "k1", body: testBody},
			want: verify.ErrBadSignature, reason: "bad_signature",
		},
		{
			name:   "covered header changed",
			signed: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
			want:   verify.ErrBadSignature, reason: "bad_signature",
		},
		{
			name:   "method changed",
			signed: func(r *http.Request) { r.Method = http.MethodPut },
			want:   verify.ErrBadSignature, reason: "bad_signature",
		},
		{
			name: "signature byte flipped",
			signed: func(r *http.Request) {
				sig := sigOf(r)
				sig[len(sig)/2] ^= 1
				r.Header.Set("Signature", httpsig.FormatSignature(httpsig.Label, sig))
			},
			want: verify.ErrBadSignature, reason: "bad_signature",
		},
		{
			name: "signature params changed (nonce)",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				i := strings.Index(in, `nonce="`) + len(`nonce="`)
				r.Header.Set("Signature-Input", in[:i]+"x"+in[i+1:])
			},
			want: verify.ErrBadSignature, reason: "bad_signature",
		},
		{
			name: "created older than the max age",
			d:    delivery{key: key, kid: "k1", body: testBody, created: t0.Add(-verify.DefaultMaxAge - time.Second), lifetime: time.Hour},
			want: verify.ErrStale, reason: "stale_signature",
		},
		{
			name: "expired beyond the clock skew",
			d:    delivery{key: key, kid: "k1", body: testBody, created: t0.Add(-time.Minute - verify.DefaultClockSkew - time.Second)},
			want: verify.ErrStale, reason: "stale_signature",
		},
		{
			name: "created in the future beyond the clock skew",
			d:    delivery{key: key, kid: "k1", body: testBody, created: t0.Add(verify.DefaultClockSkew + time.Second)},
			want: verify.ErrFuture, reason: "future_signature",
		},
		{
			name: "@path not covered",
			signed: func(r *http.Request) {
				r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `"@path" `, "", 1))
			},
			want: verify.ErrWeakCoverage, reason: "weak_coverage",
		},
		{
			name: "duplicated label in Signature-Input",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				r.Header.Set("Signature-Input", in+", "+in)
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "duplicated label in Signature",
			signed: func(r *http.Request) {
				s := r.Header.Get("Signature")
				r.Header.Set("Signature", s+", "+s)
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "expires before created",
			signed: func(r *http.Request) {
				in := r.Header.Get("Signature-Input")
				r.Header.Set("Signature-Input", strings.Replace(in, fmt.Sprintf("expires=%d", t0.Unix()+60), fmt.Sprintf("expires=%d", t0.Unix()-1), 1))
			},
			want: verify.ErrMalformed, reason: "malformed_signature",
		},
		{
			name: "keys unavailable",
			keys: keySourceFunc(func(context.Context, string) (crypto.PublicKey, error) {
				return nil, fmt.Errorf("%w: upstream down", verify.ErrKeysUnavailable)
			}),
			want: verify.ErrKeysUnavailable, reason: "keys_unavailable",
		},
		{
			name: "key source failing otherwise counts as unavailable",
			keys: keySourceFunc(func(context.Context, string) (crypto.PublicKey, error) {
				return nil, context.DeadlineExceeded
			}),
			want: verify.ErrKeysUnavailable, reason: "keys_unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			if d.key == nil {
				d = valid
			}
			var r *http.Request
			if tt.request != nil {
				r = tt.request()
			} else {
				r = upvestRequest(t, d)
				if tt.signed != nil {
					tt.signed(r)
				}
			}
			body := d.body
			if tt.body != nil {
				body = tt.body
			}
			ks := verify.KeySource(keys)
			if tt.keys != nil {
				ks = tt.keys
			}
			err := newVerifier(t, ks).Verify(context.Background(), r, body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: got %v, want %v", err, tt.want)
			}
			if got := verify.Reason(err); got != tt.reason {
				t.Errorf("Reason: got %q, want %q", got, tt.reason)
			}
		})
	}
}

// signedCovering returns a delivery whose signature covers exactly
// components (a Digest header is set first), signed over the unquoted
// base by the real signer.
func signedCovering(t *testing.T, key crypto.Signer, components ...string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", bytes.NewReader(testBody))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Digest", httpsig.Digest(testBody))
	s := httpsig.Signer{Key: key, KeyID: "k1", Style: httpsig.Unquoted, Now: func() time.Time { return t0 }}
	if err := s.Sign(r, components); err != nil {
		t.Fatal(err)
	}
	return r
}

type keySourceFunc func(ctx context.Context, kid string) (crypto.PublicKey, error)

func (f keySourceFunc) Key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	return f(ctx, kid)
}

// TestVerifyPicksMember checks which Signature-Input member is verified
// when there are several.
func TestVerifyPicksMember(t *testing.T) {
	key := ecKey(t, elliptic.P521())
	v := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"k1": &key.PublicKey}))
	bogusInput := fmt.Sprintf(`("@method" "digest");keyid="k1";created=%d`, t0.Unix())
	bogusSig := httpsig.FormatSignature("zzz", []byte("not a signature"))

	tests := []struct {
		name    string
		relabel string // rename sig1 to this label in both headers
		extra   bool   // add a bogus member before the real one
		want    error
	}{
		{name: "sig1 after another member", extra: true},
		{name: "only member, other label", relabel: "upvest"},
		// Two members and none is sig1: refused, not tried one by one.
		{name: "two members, none sig1", relabel: "upvest", extra: true, want: verify.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := upvestRequest(t, delivery{key: key, kid: "k1", body: testBody})
			in, sig := r.Header.Get("Signature-Input"), r.Header.Get("Signature")
			if tt.relabel != "" {
				in = strings.Replace(in, "sig1=", tt.relabel+"=", 1)
				sig = strings.Replace(sig, "sig1=", tt.relabel+"=", 1)
			}
			if tt.extra {
				in = "zzz=" + bogusInput + ", " + in
				sig = bogusSig + ", " + sig
			}
			r.Header.Set("Signature-Input", in)
			r.Header.Set("Signature", sig)
			err := v.Verify(context.Background(), r, testBody)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	keys := staticKeys(t, map[string]crypto.PublicKey{"k1": &ecKey(t, elliptic.P256()).PublicKey})
	tests := []struct {
		name  string
		keys  verify.KeySource
		opts  []verify.Option
		valid bool
	}{
		{name: "defaults", keys: keys, valid: true},
		{name: "all options", keys: keys, valid: true, opts: []verify.Option{
			verify.WithMaxAge(time.Minute), verify.WithClockSkew(0), verify.WithNow(time.Now),
		}},
		{name: "nil keys"},
		{name: "zero max age", keys: keys, opts: []verify.Option{verify.WithMaxAge(0)}},
		{name: "negative skew", keys: keys, opts: []verify.Option{verify.WithClockSkew(-time.Second)}},
		{name: "nil clock", keys: keys, opts: []verify.Option{verify.WithNow(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.keys, tt.opts...)
			if got := err == nil && v != nil; got != tt.valid {
				t.Errorf("New: got (%v, %v), want valid=%v", v, err, tt.valid)
			}
		})
	}
}

func TestVerifyNeverPanicsOnBareRequests(t *testing.T) {
	v := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"k1": &ecKey(t, elliptic.P256()).PublicKey}))
	for _, r := range []*http.Request{nil, {}, {Header: http.Header{"Signature": {"x"}, "Signature-Input": {"y"}}}} {
		if err := v.Verify(context.Background(), r, nil); err == nil {
			t.Errorf("Verify(%v): got nil, want an error", r)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := ecKey(b, elliptic.P521())
	v := newVerifier(b, staticKeys(b, map[string]crypto.PublicKey{"upvest": &key.PublicKey}))
	r := upvestRequest(b, delivery{key: key, kid: "upvest", body: testBody})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(ctx, r, testBody); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplayedHeadVerdicts: a head that verified is remembered, and the
// memory never changes a verdict: the same head again passes, with another
// body it fails the digest, once stale it fails freshness, and under a
// different key it is verified afresh (and fails).
func TestReplayedHeadVerdicts(t *testing.T) {
	key, other := ecKey(t, elliptic.P521()), ecKey(t, elliptic.P521())
	now := t0
	clock := func() time.Time { return now }
	v := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"upvest": &key.PublicKey}), verify.WithNow(clock))
	r := upvestRequest(t, delivery{key: key, kid: "upvest", body: testBody})
	for i := range 3 {
		if err := v.Verify(context.Background(), r, testBody); err != nil {
			t.Fatalf("verification %d of the same head: %v", i, err)
		}
	}
	if err := v.Verify(context.Background(), r, append([]byte(nil), testBody[:len(testBody)-1]...)); !errors.Is(err, verify.ErrDigestMismatch) {
		t.Errorf("same head, other body: %v, want ErrDigestMismatch", err)
	}
	rotated := newVerifier(t, staticKeys(t, map[string]crypto.PublicKey{"upvest": &other.PublicKey}), verify.WithNow(clock))
	if err := rotated.Verify(context.Background(), r, testBody); !errors.Is(err, verify.ErrBadSignature) {
		t.Errorf("same head under another key: %v, want ErrBadSignature", err)
	}
	// The key source of one verifier rotates the key behind the key id.
	src := &swappableKeys{pub: &key.PublicKey}
	swapped := newVerifier(t, src, verify.WithNow(clock))
	if err := swapped.Verify(context.Background(), r, testBody); err != nil {
		t.Fatalf("before the key changed: %v", err)
	}
	src.set(&other.PublicKey)
	if err := swapped.Verify(context.Background(), r, testBody); !errors.Is(err, verify.ErrBadSignature) {
		t.Errorf("same head once the key id names another key: %v, want ErrBadSignature", err)
	}
	src.set(&key.PublicKey)
	if err := swapped.Verify(context.Background(), r, testBody); err != nil {
		t.Errorf("the first key back: %v", err)
	}
	now = t0.Add(verify.DefaultMaxAge + verify.DefaultClockSkew + time.Second)
	if err := v.Verify(context.Background(), r, testBody); !errors.Is(err, verify.ErrStale) {
		t.Errorf("same head once stale: %v, want ErrStale", err)
	}
}

// swappableKeys is a key source whose one key (under any key id) can be
// replaced, as an upstream rotation that reuses a key id would.
type swappableKeys struct {
	mu  sync.Mutex
	pub crypto.PublicKey
}

func (k *swappableKeys) set(pub crypto.PublicKey) { k.mu.Lock(); k.pub = pub; k.mu.Unlock() }

func (k *swappableKeys) Key(context.Context, string) (crypto.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pub, nil
}
