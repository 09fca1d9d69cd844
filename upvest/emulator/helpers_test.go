package emulator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

func newServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func newTenant(t *testing.T, s *Server, opts ...TenantOption) Tenant {
	t.Helper()
	ten, err := s.NewTenant(opts...)
	if err != nil {
		t.Fatalf("NewTenant: %v", err)
	}
	return ten
}

// client is a test-only Upvest API client that signs like Upvest's v15
// signer; its knobs let tests break one thing at a time.
type client struct {
	t      *testing.T
	s      *Server
	tenant Tenant
	token  string
}

func newClient(t *testing.T, s *Server, ten Tenant, scopes ...string) *client {
	t.Helper()
	c := &client{t: t, s: s, tenant: ten}
	if len(scopes) == 0 {
		scopes = []string{scopeRead, scopeAdmin}
	}
	c.token = c.fetchToken(scopes...)
	return c
}

// req describes one API request and how to break it.
type req struct {
	method, path string
	body         []byte // sent as is
	contentType  string
	noToken      bool
	idemKey      string // default: a fresh UUID on POST/PATCH
	// signer and components override the defaults; preSign and postSign
	// tamper with the request before and after signing; noSign skips it.
	signer     *httpsig.Signer
	components func([]string) []string
	preSign    func(*http.Request)
	postSign   func(*http.Request)
	noSign     bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content-type %q, want application/problem+json (body %s)", ct, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	return p
}

func (c *client) signer() *httpsig.Signer {
	return &httpsig.Signer{Key: c.tenant.Key, KeyID: c.tenant.KeyID, Style: httpsig.Quoted, Lifetime: 30 * time.Second}
}

func (c *client) do(rq req) response {
	c.t.Helper()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	r, err := http.NewRequestWithContext(context.Background(), rq.method, c.s.URL()+rq.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	isToken := rq.path == "/auth/token"
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Upvest-Client-Id", c.tenant.ClientID)
	r.Header.Set("Upvest-Api-Version", "1")
	r.Header.Set("Upvest-Signature-Version", "15")
	comps := []string{"@method", "@path"}
	if r.URL.RawQuery != "" {
		comps = append(comps, "@query")
	}
	comps = append(comps, "accept")
	if !isToken && !rq.noToken {
		r.Header.Set("Authorization", "Bearer "+c.token)
		comps = append(comps, "authorization")
	}
	if len(rq.body) > 0 {
		ct := rq.contentType
		if ct == "" {
			ct = "application/json"
		}
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Content-Length", strconv.Itoa(len(rq.body)))
		r.Header.Set("Content-Digest", httpsig.ContentDigest(rq.body))
		comps = append(comps, "content-length", "content-type", "content-digest")
	}
	if !isToken && (rq.method == http.MethodPost || rq.method == http.MethodPatch) {
		key := rq.idemKey
		if key == "" {
			key = uuid.NewString()
		}
		r.Header.Set("Idempotency-Key", key)
		comps = append(comps, "idempotency-key")
	}
	comps = append(comps, "upvest-client-id")
	if rq.components != nil {
		comps = rq.components(comps)
	}
	if rq.preSign != nil {
		rq.preSign(r)
	}
	if !rq.noSign {
		sg := rq.signer
		if sg == nil {
			sg = c.signer()
		}
		if err := sg.Sign(r, comps); err != nil {
			c.t.Fatalf("sign: %v", err)
		}
	}
	if rq.postSign != nil {
		rq.postSign(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		c.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c *client) fetchToken(scopes ...string) string {
	c.t.Helper()
	resp := c.do(tokenReq(c.tenant, scopes...))
	if resp.status != http.StatusOK {
		c.t.Fatalf("token: status %d: %s", resp.status, resp.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.body, &tok); err != nil {
		c.t.Fatal(err)
	}
	return tok.AccessToken
}

func tokenReq(ten Tenant, scopes ...string) req {
	form := url.Values{
		"client_id":     {ten.ClientID},
		"client_secret": {ten.ClientSecret},
		"grant_type":    {"client_credentials"},
		"scope":         {strings.Join(scopes, " ")},
	}
	return req{method: http.MethodPost, path: "/auth/token", body: []byte(form.Encode()), contentType: "application/x-www-form-urlencoded"}
}

func (c *client) json(method, path string, in any, out any) response {
	c.t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			c.t.Fatal(err)
		}
	}
	resp := c.do(req{method: method, path: path, body: body})
	if out != nil && resp.status < 300 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, resp.body, err)
		}
	}
	return resp
}

func (c *client) create(t *testing.T, in map[string]any) Webhook {
	t.Helper()
	var w Webhook
	resp := c.json(http.MethodPost, "/webhooks", in, &w)
	if resp.status != http.StatusCreated {
		t.Fatalf("create: status %d: %s", resp.status, resp.body)
	}
	return w
}

// received is one request a receiver got.
type received struct {
	r    *http.Request
	body []byte
	at   time.Time
}

// receiver is a webhook endpoint whose answers tests program.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	got    []received
	answer func(n int) int // status for the n-th request (from 0)
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{r: r.Clone(context.Background()), body: b, at: time.Now()})
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n)
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/webhooks/upvest" }

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

// pkgEvent is an element of a received package.
type pkgEvent struct {
	ID        string          `json:"id"`
	CreatedAt time.Time       `json:"created_at"`
	Type      string          `json:"type"`
	Object    json.RawMessage `json:"object"`
	WebhookID string          `json:"webhook_id"`
}

func decodePackage(t *testing.T, body []byte) []pkgEvent {
	t.Helper()
	var p struct {
		Payload []pkgEvent `json:"payload"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("package %s: %v", body, err)
	}
	return p.Payload
}

var sigInputRE = regexp.MustCompile(`^sig1=(\(([^)]*)\);keyid="([^"]+)";created=(\d+);nonce="(\d{10})";expires=(\d+))$`)

// verifyDelivery checks a received package's signature the way a relay
// must, without httpsig: it rebuilds Upvest's unquoted draft-06 base from
// Signature-Input and verifies ECDSA P-521 SHA-512 DER against the JWKS.
// It returns the covered components and the key id.
func verifyDelivery(t *testing.T, jwks []byte, rc received) ([]string, string) {
	t.Helper()
	h := rc.r.Header
	m := sigInputRE.FindStringSubmatch(h.Get("Signature-Input"))
	if m == nil {
		t.Fatalf("Signature-Input %q does not have Upvest's shape", h.Get("Signature-Input"))
	}
	params, inner, kid := m[1], m[2], m[3]
	created, _ := strconv.ParseInt(m[4], 10, 64)
	expires, _ := strconv.ParseInt(m[6], 10, 64)
	if expires != created+60 {
		t.Errorf("expires %d, want created+60 = %d", expires, created+60)
	}
	var comps []string
	var lines []string
	for _, q := range strings.Fields(inner) {
		name, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("component %s not quoted in Signature-Input", q)
		}
		comps = append(comps, name)
		var v string
		switch name {
		case "@method":
			v = rc.r.Method
		case "@path":
			v = rc.r.URL.Path
		case "@query":
			v = "?" + rc.r.URL.RawQuery
		default:
			v = strings.TrimSpace(h.Get(name))
		}
		lines = append(lines, name+": "+v) // unquoted, as Upvest writes
	}
	lines = append(lines, "@signature-params: "+params)
	base := strings.Join(lines, "\n")

	sv := h.Get("Signature")
	if !strings.HasPrefix(sv, "sig1=:") || !strings.HasSuffix(sv, ":") {
		t.Fatalf("Signature %q", sv)
	}
	sig, err := base64.StdEncoding.DecodeString(sv[len("sig1=:") : len(sv)-1])
	if err != nil {
		t.Fatal(err)
	}
	pub := jwksKey(t, jwks, kid)
	sum := sha512.Sum512([]byte(base))
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		t.Fatalf("signature does not verify over base:\n%s", base)
	}
	d := sha256.Sum256(rc.body)
	if got, want := h.Get("Digest"), "SHA-256="+base64.StdEncoding.EncodeToString(d[:]); got != want {
		t.Errorf("Digest %q, want %q", got, want)
	}
	return comps, kid
}

// jwksKey finds kid in a JWKS document, decoding it by hand.
func jwksKey(t *testing.T, jwks []byte, kid string) *ecdsa.PublicKey {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("jwks %s: %v", jwks, err)
	}
	for _, k := range set.Keys {
		if k["kid"] != kid {
			continue
		}
		if k["kty"] != "EC" || k["crv"] != "P-521" {
			t.Fatalf("key %v is not EC P-521", k)
		}
		x, errX := base64.RawURLEncoding.DecodeString(k["x"])
		y, errY := base64.RawURLEncoding.DecodeString(k["y"])
		if errX != nil || errY != nil || len(x) != 66 || len(y) != 66 {
			t.Fatalf("bad coordinates in %v", k)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P521(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("key %s: %v", kid, err)
		}
		return pub
	}
	t.Fatalf("kid %s not in JWKS %s", kid, jwks)
	return nil
}
