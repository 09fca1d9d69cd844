package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

func TestTokenCall(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := &client{t: t, s: s, tenant: ten}

	resp := c.do(tokenReq(ten, "webhooks:read", "webhooks:admin"))
	if resp.status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(resp.body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.ExpiresIn != 3600 || tok.TokenType != "bearer" || tok.Scope != "webhooks:read webhooks:admin" {
		t.Errorf("token answer %+v", tok)
	}
	if resp.header.Get("Upvest-Request-Id") == "" {
		t.Error("no upvest-request-id header")
	}
}

func TestTokenCallRejects(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s, WithScopes("webhooks:read"))
	c := &client{t: t, s: s, tenant: ten}

	wrongSecret := tokenReq(ten, "webhooks:read")
	wrongSecret.body = []byte(strings.Replace(string(wrongSecret.body), "client_secret=", "client_secret=x", 1))
	wrongGrant := tokenReq(ten, "webhooks:read")
	wrongGrant.body = []byte(strings.Replace(string(wrongGrant.body), "client_credentials", "password", 1))
	unsigned := tokenReq(ten, "webhooks:read")
	unsigned.noSign = true
	basic := tokenReq(ten, "webhooks:read")
	basic.body = []byte("grant_type=client_credentials&scope=webhooks%3Aread")
	basic.preSign = func(r *http.Request) { r.SetBasicAuth(ten.ClientID, ten.ClientSecret) }

	for _, tc := range []struct {
		name   string
		req    req
		status int
		detail string
	}{
		{"wrong secret", wrongSecret, 401, "invalid client credentials"},
		{"scope not configured", tokenReq(ten, "webhooks:admin"), 401, `scope "webhooks:admin" is not configured`},
		{"no scope", tokenReq(ten), 400, "scope is required"},
		{"wrong grant type", wrongGrant, 400, "grant_type must be client_credentials"},
		{"unsigned", unsigned, 401, "missing signature-input"},
		{"basic auth", basic, 401, "not HTTP Basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *c
			c.t = t
			resp := c.do(tc.req)
			p := resp.problem(t)
			if resp.status != tc.status || p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("got %d %q, want %d containing %q", resp.status, p.Detail, tc.status, tc.detail)
			}
		})
	}
}

// TestRequestSignatureRejects breaks one thing at a time in an otherwise
// valid request; each must be refused with 401 and a helpful detail.
func TestRequestSignatureRejects(t *testing.T) {
	now := time.Now()
	s := newServer(t)
	ten := newTenant(t, s)
	other := newTenant(t, s)
	c := newClient(t, s, ten)
	body := []byte(`{"title":"relay","url":"https://relay.example.com/webhooks/upvest"}`)
	post := func(r req) req { r.method, r.path, r.body = http.MethodPost, "/webhooks", body; return r }
	get := func(r req) req { r.method, r.path = http.MethodGet, "/webhooks"; return r }
	without := func(name string) func([]string) []string {
		return func(c []string) []string { return slices.DeleteFunc(c, func(s string) bool { return s == name }) }
	}
	at := func(t time.Time, life time.Duration) *httpsig.Signer {
		sg := c.signer()
		sg.Now, sg.Lifetime = func() time.Time { return t }, life
		return sg
	}
	unquoted := c.signer()
	unquoted.Style = httpsig.Unquoted
	wrongKey := c.signer()
	wrongKey.Key = other.Key

	for _, tc := range []struct {
		name   string
		req    req
		detail string
	}{
		{"unsigned", get(req{noSign: true}), "missing signature-input"},
		{"no client id", get(req{preSign: func(r *http.Request) { r.Header.Del("Upvest-Client-Id") }, components: without("upvest-client-id")}), "missing upvest-client-id"},
		{"unknown client id", get(req{postSign: func(r *http.Request) { r.Header.Set("Upvest-Client-Id", "nobody") }}), "unknown upvest-client-id"},
		{"api version", get(req{postSign: func(r *http.Request) { r.Header.Set("Upvest-Api-Version", "2") }}), "upvest-api-version must be 1"},
		{"no signature version", get(req{postSign: func(r *http.Request) { r.Header.Del("Upvest-Signature-Version") }}), "upvest-signature-version must be 15"},
		{"accept not covered", get(req{components: without("accept")}), `must cover "accept"`},
		{"authorization not covered", get(req{components: without("authorization")}), `must cover "authorization"`},
		{"path not covered", get(req{components: without("@path")}), `must cover "@path"`},
		{"query not covered", req{method: http.MethodGet, path: "/webhooks?limit=5", components: without("@query")}, `must cover "@query"`},
		{"digest not covered", post(req{components: without("content-digest")}), `must cover "content-digest"`},
		{"content-length not covered", post(req{components: without("content-length")}), `must cover "content-length"`},
		{"idempotency-key missing", post(req{preSign: func(r *http.Request) { r.Header.Del("Idempotency-Key") }, components: without("idempotency-key")}), "missing idempotency-key"},
		{"stale", get(req{signer: at(now.Add(-2*time.Minute), 60*time.Second)}), "signature expired"},
		{"future", get(req{signer: at(now.Add(time.Minute), 30*time.Second)}), "in the future"},
		{"lifetime too long", get(req{signer: at(now, 120*time.Second)}), "10 to 60 seconds"},
		{"lifetime too short", get(req{signer: at(now, 5*time.Second)}), "10 to 60 seconds"},
		{"body changed after signing", post(req{postSign: func(r *http.Request) {
			r.Body = readCloser(`{"title":"evil!","url":"https://relay.example.com/webhooks/upvest"}`)
		}}), "content-digest does not match"},
		{"digest sha-256 only", post(req{preSign: func(r *http.Request) {
			r.Header.Set("Content-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:")
		}}), "must carry sha-512"},
		{"header changed after signing", get(req{postSign: func(r *http.Request) { r.Header.Set("Accept", "application/json, */*") }}), "does not verify"},
		{"unquoted base", get(req{signer: unquoted}), "does not verify"},
		{"other tenant's key", get(req{signer: wrongKey}), "does not verify"},
		{"unknown keyid", get(req{signer: &httpsig.Signer{Key: ten.Key, KeyID: "k2", Lifetime: 30 * time.Second}}), `unknown keyid "k2"`},
		{"no bearer", get(req{noToken: true}), "missing authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *c
			c.t = t
			before := len(s.SignatureFailures())
			resp := c.do(tc.req)
			if resp.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.status, resp.body)
			}
			p := resp.problem(t)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", p.Detail, tc.detail)
			}
			if p.RequestID == "" || p.RequestID != resp.header.Get("Upvest-Request-Id") || p.Instance != strings.Split(tc.req.path, "?")[0] {
				t.Errorf("problem %+v, request id header %q", p, resp.header.Get("Upvest-Request-Id"))
			}
			if got := len(s.SignatureFailures()); got != before+1 {
				t.Errorf("SignatureFailures grew to %d, want %d", got, before+1)
			}
		})
	}
	if got := len(s.Webhooks(ten.ClientID)); got != 0 {
		t.Errorf("%d webhooks created by rejected requests", got)
	}
}

func TestBearerToken(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	s := newServer(t, WithClock(clock), WithTokenLifetime(time.Minute))
	ten := newTenant(t, s)
	other := newClient(t, s, newTenant(t, s))
	reader := newClient(t, s, ten, "webhooks:read")
	sign := func(c *client) *httpsig.Signer { sg := c.signer(); sg.Now = clock; return sg }

	resp := reader.do(req{method: http.MethodGet, path: "/webhooks", signer: sign(reader)})
	if resp.status != http.StatusOK {
		t.Fatalf("GET with read scope: %d %s", resp.status, resp.body)
	}
	resp = reader.do(req{method: http.MethodPost, path: "/webhooks", body: []byte(`{}`), signer: sign(reader)})
	if resp.status != http.StatusForbidden || !strings.Contains(resp.problem(t).Detail, "webhooks:admin") {
		t.Errorf("POST with read scope: %d %s, want 403 naming webhooks:admin", resp.status, resp.body)
	}

	stolen := *reader
	stolen.token = other.token
	resp = stolen.do(req{method: http.MethodGet, path: "/webhooks", signer: sign(&stolen)})
	if resp.status != http.StatusUnauthorized || !strings.Contains(resp.problem(t).Detail, "another client") {
		t.Errorf("other client's token: %d %s", resp.status, resp.body)
	}

	bogus := *reader
	bogus.token = "nope"
	resp = bogus.do(req{method: http.MethodGet, path: "/webhooks", signer: sign(&bogus)})
	if resp.status != http.StatusUnauthorized || !strings.Contains(resp.problem(t).Detail, "unknown access token") {
		t.Errorf("bogus token: %d %s", resp.status, resp.body)
	}

	advance(61 * time.Second)
	resp = reader.do(req{method: http.MethodGet, path: "/webhooks", signer: sign(reader)})
	if resp.status != http.StatusUnauthorized || !strings.Contains(resp.problem(t).Detail, "expired") {
		t.Errorf("expired token: %d %s", resp.status, resp.body)
	}
	if n := len(s.AuthFailures()) - len(s.SignatureFailures()); n != 3 {
		t.Errorf("%d token failures recorded, want 3", n)
	}
}

func TestEd25519AndExternalTenants(t *testing.T) {
	s := newServer(t)
	ed := newTenant(t, s, WithEd25519())
	if resp := newClient(t, s, ed).do(req{method: http.MethodGet, path: "/webhooks"}); resp.status != http.StatusOK {
		t.Errorf("Ed25519 tenant: %d %s", resp.status, resp.body)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddTenant("ext", "secret", &key.PublicKey, "ext-key"); err != nil {
		t.Fatal(err)
	}
	ext := Tenant{ClientID: "ext", ClientSecret: "secret", KeyID: "ext-key", Key: key}
	if resp := newClient(t, s, ext).do(req{method: http.MethodGet, path: "/webhooks"}); resp.status != http.StatusOK {
		t.Errorf("external P-256 tenant: %d %s", resp.status, resp.body)
	}
	if err := s.AddTenant("ext", "x", &key.PublicKey, "k"); err == nil {
		t.Error("AddTenant accepted a duplicate client id")
	}
}

func TestKeyPEM(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		name, pemType string
		opts          []TenantOption
	}{
		{"p521", "EC PRIVATE KEY", nil},
		{"ed25519", "PRIVATE KEY", []TenantOption{WithEd25519()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ten := newTenant(t, s, tc.opts...)
			b, err := ten.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != tc.pemType {
				t.Fatalf("PEM %q, want type %s", b, tc.pemType)
			}
			if tc.pemType == "EC PRIVATE KEY" {
				k, err := x509.ParseECPrivateKey(blk.Bytes)
				if err != nil || k.Curve != elliptic.P521() || !k.Equal(ten.Key) {
					t.Errorf("SEC1 key does not round-trip: %v", err)
				}
			}
		})
	}
}

func TestVerifyKeysAndRotation(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newServer(t, WithClock(clock), WithKeyRetention(10*time.Minute), WithTokenLifetime(24*time.Hour))
	ten := newTenant(t, s)
	c := newClient(t, s, ten, "webhooks:read")
	sg := func() *httpsig.Signer { x := c.signer(); x.Now = clock; return x }
	fetch := func() map[string]bool {
		t.Helper()
		resp := c.do(req{method: http.MethodGet, path: "/auth/verify_keys", signer: sg()})
		if resp.status != http.StatusOK {
			t.Fatalf("verify_keys: %d %s", resp.status, resp.body)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(resp.body, &set); err != nil {
			t.Fatal(err)
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			if len(k) != 5 || k["kty"] != "EC" || k["crv"] != "P-521" {
				t.Errorf("key %v, want exactly kid, kty EC, crv P-521, x, y", k)
			}
			jwksKey(t, resp.body, k["kid"].(string))
			kids[k["kid"].(string)] = true
		}
		return kids
	}
	first := s.SigningKeyID()
	if got := fetch(); len(got) != 1 || !got[first] {
		t.Fatalf("keys %v, want only %s", got, first)
	}
	second, err := s.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if s.SigningKeyID() != second {
		t.Error("rotation did not switch the signing key")
	}
	if got := fetch(); len(got) != 2 || !got[first] || !got[second] {
		t.Fatalf("after rotation keys %v, want %s and %s", got, first, second)
	}
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	if got := fetch(); len(got) != 1 || !got[second] {
		t.Fatalf("after retention keys %v, want only %s", got, second)
	}
}

func TestFaults(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s, newTenant(t, s))
	s.InjectFault(Fault{Method: "GET", PathPrefix: "/webhooks", Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second, Times: 2})
	s.InjectFault(Fault{PathPrefix: "/auth/verify_keys", Status: http.StatusServiceUnavailable})

	for i, want := range []int{429, 429, 200} {
		resp := c.do(req{method: http.MethodGet, path: "/webhooks"})
		if resp.status != want {
			t.Fatalf("call %d: status %d, want %d", i, resp.status, want)
		}
		if want == 429 {
			if ra := resp.header.Get("Retry-After"); ra != "2" {
				t.Errorf("Retry-After %q, want 2", ra)
			}
			if p := resp.problem(t); p.Status != 429 || p.RequestID == "" {
				t.Errorf("problem %+v", p)
			}
		}
	}
	if resp := c.do(req{method: http.MethodGet, path: "/auth/verify_keys"}); resp.status != 503 {
		t.Errorf("verify_keys: %d, want 503", resp.status)
	}
	if got := s.CallCount("GET", "/webhooks"); got != 3 {
		t.Errorf("CallCount(GET /webhooks) = %d, want 3", got)
	}
	s.ClearFaults()
	if resp := c.do(req{method: http.MethodGet, path: "/auth/verify_keys"}); resp.status != 200 {
		t.Errorf("verify_keys after ClearFaults: %d", resp.status)
	}

	s.InjectFault(Fault{Method: "GET", CloseConnection: true, Times: 1})
	r, err := http.NewRequest(http.MethodGet, s.URL()+"/webhooks", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh transport: Go retries a GET that fails on a reused connection.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	if resp, err := tr.RoundTrip(r); err == nil {
		resp.Body.Close()
		t.Errorf("dropped connection answered %d", resp.StatusCode)
	}
}

func readCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
