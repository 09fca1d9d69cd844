package upvest_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/upvest"
)

// fake is a minimal Upvest API for the client's tests: it checks every
// request's signature independently (sigcheck_test.go), issues tokens, and
// keeps webhooks in memory. intercept, when set, may answer a request
// (after the signature check) instead of the normal handlers.
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	key    crypto.Signer
	sig    sigExpect
	secret string
	scope  string
	mux    *http.ServeMux

	mu        sync.Mutex
	expiresIn int
	tokens    map[string]bool // issued, still valid
	issued    int
	hooks     []upvest.Webhook
	nextID    int
	seen      []seen
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// seen is one request that passed the signature check.
type seen struct {
	Method, Path, Query, Auth, IdemKey string
}

func newFake(t *testing.T, key crypto.Signer) *fake {
	t.Helper()
	f := &fake{
		t:         t,
		key:       key,
		sig:       sigExpect{pub: key.Public(), keyID: testKeyID, clientID: testClientID},
		secret:    testSecret,
		scope:     "webhooks:read webhooks:admin",
		expiresIn: 3600,
		tokens:    map[string]bool{},
		mux:       http.NewServeMux(),
	}
	f.mux.HandleFunc("POST /auth/token", f.token)
	f.mux.HandleFunc("GET /auth/verify_keys", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	})
	f.mux.HandleFunc("GET /webhooks", f.list)
	f.mux.HandleFunc("POST /webhooks", f.create)
	f.mux.HandleFunc("GET /webhooks/{id}", f.get)
	f.mux.HandleFunc("PATCH /webhooks/{id}", f.update)
	f.mux.HandleFunc("DELETE /webhooks/{id}", f.delete)
	f.mux.HandleFunc("POST /webhooks/{id}/test", f.test)
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a Client for f with opts appended to test defaults.
func (f *fake) client(t *testing.T, opts ...upvest.Option) *upvest.Client {
	t.Helper()
	c, err := upvest.New(f.srv.URL, testClientID, testSecret, f.key, testKeyID, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func (f *fake) setIntercept(fn func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.intercept = fn
}

// requests returns the signed requests seen so far, optionally only those
// with the given method and path ("" matches any).
func (f *fake) requests(method, path string) []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []seen
	for _, s := range f.seen {
		if (method == "" || s.Method == method) && (path == "" || s.Path == path) {
			out = append(out, s)
		}
	}
	return out
}

func (f *fake) issuedTokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

func (f *fake) addHooks(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.hooks = append(f.hooks, f.newHookLocked("seed", "https://example.com/h"))
	}
}

func (f *fake) newHookLocked(title, url string) upvest.Webhook {
	f.nextID++
	now := time.Now().UTC().Truncate(time.Second)
	return upvest.Webhook{
		ID:        fmt.Sprintf("00000000-0000-4000-8000-%012d", f.nextID),
		CreatedAt: now,
		UpdatedAt: now,
		Title:     title,
		URL:       url,
		Type:      []string{"ALL"},
		Config:    upvest.WebhookConfig{Delay: "5s", MaxPackageSize: 1048576},
	}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Upvest-Request-Id", "req-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		problem(w, http.StatusBadRequest, "unreadable body")
		return
	}
	isToken := r.URL.Path == "/auth/token"
	if err := f.sig.check(r, body, !isToken); err != nil {
		f.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		problem(w, http.StatusUnauthorized, "invalid signature")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	f.mu.Lock()
	f.seen = append(f.seen, seen{
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Auth:    r.Header.Get("Authorization"),
		IdemKey: r.Header.Get("Idempotency-Key"),
	})
	intercept := f.intercept
	authorized := f.tokens[trimBearer(r.Header.Get("Authorization"))]
	f.mu.Unlock()

	if intercept != nil && intercept(w, r) {
		return
	}
	if !isToken && !authorized {
		problem(w, http.StatusUnauthorized, "invalid token")
		return
	}
	f.mux.ServeHTTP(w, r)
}

func trimBearer(s string) string {
	if len(s) > 7 && s[:7] == "Bearer " {
		return s[7:]
	}
	return ""
}

func (f *fake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		problem(w, http.StatusBadRequest, "bad form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" ||
		r.PostForm.Get("client_id") != testClientID ||
		r.PostForm.Get("client_secret") != f.secret {
		problem(w, http.StatusUnauthorized, "invalid client")
		return
	}
	if got := r.PostForm.Get("scope"); got != f.scope {
		f.t.Errorf("token scope %q, want %q", got, f.scope)
	}
	f.mu.Lock()
	f.issued++
	tok := fmt.Sprintf("token-%d", f.issued)
	f.tokens[tok] = true
	expiresIn := f.expiresIn
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "expires_in": expiresIn, "token_type": "bearer", "scope": f.scope,
	})
}

func (f *fake) list(w http.ResponseWriter, r *http.Request) {
	offset, err1 := strconv.Atoi(r.URL.Query().Get("offset"))
	limit, err2 := strconv.Atoi(r.URL.Query().Get("limit"))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 1000 {
		problem(w, http.StatusBadRequest, "bad offset or limit")
		return
	}
	f.mu.Lock()
	total := len(f.hooks)
	start, end := min(offset, total), min(offset+limit, total)
	data := append([]upvest.Webhook{}, f.hooks[start:end]...)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"meta": map[string]any{"offset": offset, "limit": limit, "count": len(data), "total_count": total},
		"data": data,
	})
}

func (f *fake) create(w http.ResponseWriter, r *http.Request) {
	var in upvest.WebhookCreate
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Title == "" || in.URL == "" {
		problem(w, http.StatusBadRequest, "bad webhook")
		return
	}
	f.mu.Lock()
	h := f.newHookLocked(in.Title, in.URL)
	if in.Type != nil {
		h.Type = in.Type
	}
	if in.Config != nil {
		h.Config = *in.Config
	}
	f.hooks = append(f.hooks, h)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, h)
}

// find returns the index of webhook id; f.mu must be held.
func (f *fake) findLocked(id string) int {
	for i, h := range f.hooks {
		if h.ID == id {
			return i
		}
	}
	return -1
}

func (f *fake) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.findLocked(r.PathValue("id"))
	if i < 0 {
		problem(w, http.StatusNotFound, "webhook not found")
		return
	}
	writeJSON(w, http.StatusOK, f.hooks[i])
}

func (f *fake) update(w http.ResponseWriter, r *http.Request) {
	var in upvest.WebhookUpdate
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		problem(w, http.StatusBadRequest, "bad update")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.findLocked(r.PathValue("id"))
	if i < 0 {
		problem(w, http.StatusNotFound, "webhook not found")
		return
	}
	h := &f.hooks[i]
	if in.Title != nil {
		h.Title = *in.Title
	}
	if in.URL != nil {
		h.URL = *in.URL
	}
	if in.Type != nil {
		h.Type = in.Type
	}
	if in.Enabled != nil {
		h.Enabled = *in.Enabled
	}
	if in.Config != nil {
		h.Config = *in.Config
	}
	h.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, *h)
}

func (f *fake) delete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.findLocked(r.PathValue("id"))
	if i < 0 {
		problem(w, http.StatusNotFound, "webhook not found")
		return
	}
	f.hooks = append(f.hooks[:i], f.hooks[i+1:]...)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fake) test(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.findLocked(r.PathValue("id")) < 0 {
		problem(w, http.StatusNotFound, "webhook not found")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, title string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "status": status, "title": title,
	})
}
