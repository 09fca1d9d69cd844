package upvest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file checks signed requests the way Upvest would, written
// independently of package httpsig: it rebuilds the expected component list
// and the quoted draft-15 signature base from the received request by hand
// and verifies with crypto/ecdsa (SHA-512, ASN.1 DER) or crypto/ed25519.

var (
	sigInputRE  = regexp.MustCompile(`^sig1=(\(("[a-z@-]+"(?: "[a-z@-]+")*)\);keyid="([^"\\]+)";created=([0-9]+);nonce="([0-9]{10})";expires=([0-9]+))$`)
	signatureRE = regexp.MustCompile(`^sig1=:([A-Za-z0-9+/]+=*):$`)
	uuidRE      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

const (
	testClientID = "client-1"
	testSecret   = "s3cr3t-client-secret"
	testKeyID    = "key-1"
)

// sigExpect is what a received request must carry.
type sigExpect struct {
	pub      crypto.PublicKey
	keyID    string
	clientID string
}

// check returns nil if r (whose body was read into body) is signed as
// Upvest requires; wantAuth says whether authorization must be present
// (everywhere but the token call) or absent.
func (e sigExpect) check(r *http.Request, body []byte, wantAuth bool) error {
	h := r.Header
	for name, want := range map[string]string{
		"upvest-client-id":         e.clientID,
		"upvest-api-version":       "1",
		"upvest-signature-version": "15",
		"accept":                   "application/json",
	} {
		if got := h.Get(name); got != want {
			return fmt.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	auth := h.Get("Authorization")
	if wantAuth && !strings.HasPrefix(auth, "Bearer ") {
		return fmt.Errorf("authorization missing or not Bearer")
	}
	if !wantAuth && auth != "" {
		return fmt.Errorf("authorization present on a call that must not have it")
	}
	idem := h.Get("Idempotency-Key")
	if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && !uuidRE.MatchString(idem) {
		return fmt.Errorf("idempotency-key %q on %s is not a uuid", idem, r.Method)
	}

	want := []string{"@method", "@path"}
	if r.URL.RawQuery != "" {
		want = append(want, "@query")
	}
	want = append(want, "accept")
	if auth != "" {
		want = append(want, "authorization")
	}
	if len(body) > 0 {
		if got, want := h.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
			return fmt.Errorf("content-length header %q, body has %s bytes", got, want)
		}
		if r.ContentLength != int64(len(body)) {
			return fmt.Errorf("content-length on the wire %d, body has %d bytes", r.ContentLength, len(body))
		}
		if h.Get("Content-Type") == "" {
			return fmt.Errorf("no content-type with a body")
		}
		sum := sha512.Sum512(body)
		if got, want := h.Get("Content-Digest"), "sha-512=:"+base64.StdEncoding.EncodeToString(sum[:])+":"; got != want {
			return fmt.Errorf("content-digest %q, want %q", got, want)
		}
		want = append(want, "content-length", "content-type", "content-digest")
	} else if h.Get("Content-Digest") != "" {
		return fmt.Errorf("content-digest without a body")
	}
	if idem != "" {
		want = append(want, "idempotency-key")
	}
	want = append(want, "upvest-client-id")

	m := sigInputRE.FindStringSubmatch(h.Get("Signature-Input"))
	if m == nil {
		return fmt.Errorf("signature-input %q not in Upvest's form", h.Get("Signature-Input"))
	}
	var got []string
	for _, c := range strings.Split(m[2], " ") {
		got = append(got, strings.Trim(c, `"`))
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("covered components %q, want %q", got, want)
	}
	if m[3] != e.keyID {
		return fmt.Errorf("keyid %q, want %q", m[3], e.keyID)
	}
	created, _ := strconv.ParseInt(m[4], 10, 64)
	expires, _ := strconv.ParseInt(m[6], 10, 64)
	if d := time.Now().Unix() - created; d < -5 || d > 5 {
		return fmt.Errorf("created %d is %d s off now", created, d)
	}
	if life := expires - created; life < 10 || life > 60 {
		return fmt.Errorf("expires - created = %d s, want 10..60", life)
	}

	var base strings.Builder
	for _, c := range got {
		var v string
		switch c {
		case "@method":
			v = r.Method
		case "@path":
			v = r.URL.EscapedPath()
		case "@query":
			v = "?" + r.URL.RawQuery
		default:
			v = strings.TrimSpace(h.Get(c))
		}
		base.WriteString(`"` + c + `": ` + v + "\n")
	}
	base.WriteString(`"@signature-params": ` + m[1])

	sm := signatureRE.FindStringSubmatch(h.Get("Signature"))
	if sm == nil {
		return fmt.Errorf("signature header not in the form sig1=:b64:")
	}
	sig, err := base64.StdEncoding.DecodeString(sm[1])
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	ok := false
	switch pub := e.pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha512.Sum512([]byte(base.String()))
		ok = ecdsa.VerifyASN1(pub, sum[:], sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, []byte(base.String()), sig)
	default:
		return fmt.Errorf("test key type %T", e.pub)
	}
	if !ok {
		return fmt.Errorf("signature does not verify over base:\n%s", base.String())
	}
	return nil
}
