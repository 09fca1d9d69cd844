package upvest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// maxRequestBody is the largest request body SigningTransport buffers to
// compute its digest.
const maxRequestBody = 1 << 20

// SigningTransport is an http.RoundTripper that signs every request the way
// Upvest's API requires (HTTP Message Signatures draft 15). It never
// modifies the caller's request: it signs a clone, on which it sets
//   - upvest-client-id, upvest-api-version: 1, upvest-signature-version: 15;
//   - accept: application/json, unless set;
//   - idempotency-key (a random UUID) on POST and PATCH, unless set, so a
//     caller retrying one logical call can reuse its own key;
//   - with a non-empty body (buffered, at most 1 MiB):
//     content-length (the same value net/http sends), content-type
//     (application/json unless set) and content-digest (sha-512);
//   - Signature-Input and Signature, covering in this order @method, @path,
//     @query (only with a query string), accept, authorization (only when
//     present: the token call has none), content-length, content-type and
//     content-digest (only with a body), idempotency-key (when present) and
//     upvest-client-id.
//
// Authorization must be set before the request reaches this transport (put
// an oauth2.Transport in front of it), or it is not covered.
type SigningTransport struct {
	base     http.RoundTripper
	clientID string
	signer   httpsig.Signer
}

// NewSigningTransport returns a transport that signs with signer and sends
// through base (http.DefaultTransport when nil). The signer must have a Key
// (ECDSA or Ed25519) and KeyID, the Quoted style, and a Lifetime of 0
// (meaning 60 s) or between 10 and 60 s; it is copied. clientID and the key
// id must be non-empty printable ASCII.
func NewSigningTransport(base http.RoundTripper, clientID string, signer *httpsig.Signer) (*SigningTransport, error) {
	switch {
	case !printableASCII(clientID):
		return nil, fmt.Errorf("%w: client id must be non-empty printable ASCII", ErrInvalid)
	case signer == nil || signer.Key == nil:
		return nil, fmt.Errorf("%w: no signing key", ErrInvalid)
	case !printableASCII(signer.KeyID):
		// httpsig writes keyid as a quoted string; only printable ASCII
		// makes a valid structured-field string.
		return nil, fmt.Errorf("%w: signing key id must be non-empty printable ASCII", ErrInvalid)
	case signer.Style != httpsig.Quoted:
		return nil, fmt.Errorf("%w: Upvest's API needs the quoted (draft-15) signature base", ErrInvalid)
	case signer.Lifetime != 0 && (signer.Lifetime < 10*time.Second || signer.Lifetime > 60*time.Second):
		return nil, fmt.Errorf("%w: signature lifetime %s outside 10s..60s", ErrInvalid, signer.Lifetime)
	}
	switch signer.Key.Public().(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: signing key type %T (want ECDSA or Ed25519)", ErrInvalid, signer.Key.Public())
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &SigningTransport{base: base, clientID: clientID, signer: *signer}, nil
}

// RoundTrip signs a clone of req and sends it. It always closes req.Body.
func (t *SigningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	h := r.Header
	h.Set("Upvest-Client-Id", t.clientID)
	h.Set("Upvest-Api-Version", "1")
	h.Set("Upvest-Signature-Version", "15")
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && h.Get("Idempotency-Key") == "" {
		h.Set("Idempotency-Key", uuid.NewString())
	}
	r.TransferEncoding = nil
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		// net/http writes Content-Length from r.ContentLength and ignores
		// the header map; keep both equal so the covered value is the
		// one on the wire.
		r.ContentLength = int64(len(body))
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		h.Set("Content-Digest", httpsig.ContentDigest(body))
	} else {
		r.Body, r.GetBody, r.ContentLength = nil, nil, 0
		h.Del("Content-Length")
		h.Del("Content-Digest")
	}
	if err := t.signer.Sign(r, coveredComponents(r, len(body) > 0)); err != nil {
		return nil, fmt.Errorf("upvest: sign request: %w", err)
	}
	return t.base.RoundTrip(r)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// readBody buffers and closes req.Body.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
	if err != nil {
		return nil, fmt.Errorf("upvest: read request body: %w", err)
	}
	if len(body) > maxRequestBody {
		return nil, fmt.Errorf("%w: over %d bytes", ErrRequestTooLarge, maxRequestBody)
	}
	return body, nil
}

// coveredComponents lists what Upvest expects signed, in Upvest's order.
func coveredComponents(r *http.Request, hasBody bool) []string {
	c := make([]string, 0, 10)
	c = append(c, "@method", "@path")
	if r.URL.RawQuery != "" {
		c = append(c, "@query")
	}
	c = append(c, "accept")
	if r.Header.Get("Authorization") != "" {
		c = append(c, "authorization")
	}
	if hasBody {
		c = append(c, "content-length", "content-type", "content-digest")
	}
	if r.Header.Get("Idempotency-Key") != "" {
		c = append(c, "idempotency-key")
	}
	return append(c, "upvest-client-id")
}
