package upvest_test

import (
	"crypto"
	"crypto/elliptic"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/httpsig"
	"github.com/upvest-relay/upvest-relay/upvest"
)

// received is what a test server saw.
type received struct {
	header        http.Header
	contentLength int64
	transferEnc   []string
	body          string
}

// sigServer checks every request's signature with sigExpect and records it.
func sigServer(t *testing.T, key crypto.Signer) (*httptest.Server, func() []received) {
	t.Helper()
	exp := sigExpect{pub: key.Public(), keyID: testKeyID, clientID: testClientID}
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := exp.check(r, body, r.Header.Get("Authorization") != ""); err != nil {
			t.Errorf("%s %s: %v", r.Method, r.URL, err)
		}
		mu.Lock()
		got = append(got, received{r.Header.Clone(), r.ContentLength, r.TransferEncoding, string(body)})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func newTransport(t *testing.T, key crypto.Signer) *upvest.SigningTransport {
	t.Helper()
	tr, err := upvest.NewSigningTransport(nil, testClientID, &httpsig.Signer{Key: key, KeyID: testKeyID, Style: httpsig.Quoted})
	if err != nil {
		t.Fatalf("NewSigningTransport: %v", err)
	}
	return tr
}

// opaqueReader hides its length from net/http, as a streamed body would.
type opaqueReader struct{ io.Reader }

func TestSigningTransport(t *testing.T) {
	keys := map[string]crypto.Signer{
		"P-256":   newECKey(t, elliptic.P256()),
		"P-521":   newECKey(t, elliptic.P521()),
		"Ed25519": newEd25519Key(t),
	}
	tests := []struct {
		name    string
		method  string
		path    string
		body    func() io.Reader
		headers map[string]string
	}{
		{name: "GET with query", method: "GET", path: "/webhooks?offset=0&limit=1000"},
		{name: "GET with authorization", method: "GET", path: "/webhooks/abc", headers: map[string]string{"Authorization": "Bearer t"}},
		{name: "POST known length", method: "POST", path: "/webhooks", body: func() io.Reader { return strings.NewReader(`{"title":"x"}`) }},
		{name: "POST unknown length", method: "POST", path: "/webhooks", body: func() io.Reader { return opaqueReader{strings.NewReader(`{"title":"y"}`)} }},
		{name: "POST form", method: "POST", path: "/auth/token", body: func() io.Reader { return strings.NewReader("grant_type=client_credentials") },
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{name: "POST without body", method: "POST", path: "/webhooks/abc/test"},
		{name: "PATCH with caller's idempotency key", method: "PATCH", path: "/webhooks/abc", body: func() io.Reader { return strings.NewReader(`{}`) },
			headers: map[string]string{"Idempotency-Key": "6f1c2a8e-0d3b-4b8e-9a51-2f7c9d0e1a2b", "Authorization": "Bearer t"}},
		{name: "DELETE", method: "DELETE", path: "/webhooks/abc", headers: map[string]string{"Authorization": "Bearer t"}},
	}
	for kname, key := range keys {
		for _, tt := range tests {
			t.Run(kname+"/"+tt.name, func(t *testing.T) {
				srv, got := sigServer(t, key)
				client := &http.Client{Transport: newTransport(t, key)}
				var body io.Reader
				if tt.body != nil {
					body = tt.body()
				}
				req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tt.headers {
					req.Header.Set(k, v)
				}
				before := req.Header.Clone()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				resp.Body.Close()

				if len(req.Header) != len(before) || req.Header.Get("Signature") != "" {
					t.Errorf("caller's request was modified: %v", req.Header)
				}
				rs := got()
				if len(rs) != 1 {
					t.Fatalf("server saw %d requests, want 1", len(rs))
				}
				r := rs[0]
				if len(r.transferEnc) != 0 {
					t.Errorf("transfer-encoding %v, want a plain content-length", r.transferEnc)
				}
				if want := tt.headers["Idempotency-Key"]; want != "" && r.header.Get("Idempotency-Key") != want {
					t.Errorf("idempotency-key %q, want the caller's %q", r.header.Get("Idempotency-Key"), want)
				}
				if want := tt.headers["Content-Type"]; want != "" && r.header.Get("Content-Type") != want {
					t.Errorf("content-type %q, want the caller's %q", r.header.Get("Content-Type"), want)
				}
				if r.body == "" && r.header.Get("Content-Digest") != "" {
					t.Errorf("content-digest sent without a body")
				}
			})
		}
	}
}

func TestSigningTransportBodyTooLarge(t *testing.T) {
	tr := newTransport(t, newECKey(t, elliptic.P256()))
	body := &closeRecorder{Reader: strings.NewReader(strings.Repeat("x", 1<<20+1))}
	req, err := http.NewRequest("POST", "http://127.0.0.1:1/webhooks", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, upvest.ErrRequestTooLarge) {
		t.Errorf("err = %v, want ErrRequestTooLarge", err)
	}
	if !body.closed {
		t.Errorf("request body not closed")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestNewSigningTransportInvalid(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	tests := []struct {
		name     string
		clientID string
		signer   *httpsig.Signer
	}{
		{"no client id", "", &httpsig.Signer{Key: key, KeyID: "k"}},
		{"nil signer", "c", nil},
		{"no key", "c", &httpsig.Signer{KeyID: "k"}},
		{"no key id", "c", &httpsig.Signer{Key: key}},
		{"non-ASCII key id", "c", &httpsig.Signer{Key: key, KeyID: "clé"}},
		{"client id with newline", "c\nx", &httpsig.Signer{Key: key, KeyID: "k"}},
		{"unquoted", "c", &httpsig.Signer{Key: key, KeyID: "k", Style: httpsig.Unquoted}},
		{"lifetime too short", "c", &httpsig.Signer{Key: key, KeyID: "k", Lifetime: 5 * time.Second}},
		{"lifetime too long", "c", &httpsig.Signer{Key: key, KeyID: "k", Lifetime: 61 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := upvest.NewSigningTransport(nil, tt.clientID, tt.signer); !errors.Is(err, upvest.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// captureRT records the request it is given instead of sending it.
type captureRT struct{ req *http.Request }

func (c *captureRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.req = r
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

// TestSigCheckRejects makes sure the independent checker used by the other
// tests is not vacuous: it must refuse a tampered request.
func TestSigCheckRejects(t *testing.T) {
	key := newECKey(t, elliptic.P521())
	capture := &captureRT{}
	tr, err := upvest.NewSigningTransport(capture, testClientID, &httpsig.Signer{Key: key, KeyID: testKeyID})
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"title":"x"}`
	req, _ := http.NewRequest("POST", "http://upvest.test/webhooks?x=1", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	signed := capture.req
	exp := sigExpect{pub: key.Public(), keyID: testKeyID, clientID: testClientID}
	if err := exp.check(signed, []byte(body), true); err != nil {
		t.Fatalf("untampered request refused: %v", err)
	}
	tests := []struct {
		name   string
		tamper func(r *http.Request, e *sigExpect) []byte
	}{
		{"other key", func(r *http.Request, e *sigExpect) []byte {
			e.pub = newECKey(t, elliptic.P521()).Public()
			return []byte(body)
		}},
		{"other body", func(r *http.Request, e *sigExpect) []byte { return []byte(`{"title":"y"}`) }},
		{"other path", func(r *http.Request, e *sigExpect) []byte { r.URL.Path = "/webhooks/x"; return []byte(body) }},
		{"other query", func(r *http.Request, e *sigExpect) []byte { r.URL.RawQuery = "x=2"; return []byte(body) }},
		{"other token", func(r *http.Request, e *sigExpect) []byte {
			r.Header.Set("Authorization", "Bearer u")
			return []byte(body)
		}},
		{"other idempotency key", func(r *http.Request, e *sigExpect) []byte {
			r.Header.Set("Idempotency-Key", "00000000-0000-4000-8000-000000000000")
			return []byte(body)
		}},
		{"no authorization", func(r *http.Request, e *sigExpect) []byte { r.Header.Del("Authorization"); return []byte(body) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed.Clone(signed.Context())
			e := exp
			b := tt.tamper(r, &e)
			if err := e.check(r, b, r.Header.Get("Authorization") != ""); err == nil {
				t.Errorf("tampered request accepted")
			}
		})
	}
}
