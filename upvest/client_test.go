package upvest_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/upvest"
)

func ptr[T any](v T) *T { return &v }

func TestClientWebhookLifecycle(t *testing.T) {
	keys := map[string]crypto.Signer{
		"P-256":   newECKey(t, elliptic.P256()),
		"P-521":   newECKey(t, elliptic.P521()),
		"Ed25519": newEd25519Key(t),
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, key)
			c := f.client(t)
			ctx := context.Background()

			cfg := &upvest.WebhookConfig{Delay: "5s", MaxPackageSize: 1048576}
			created, err := c.CreateWebhook(ctx, upvest.WebhookCreate{
				Title: "upvest-relay", URL: "https://relay.example/webhooks/upvest", Type: []string{"ORDER", "USER"}, Config: cfg,
			})
			if err != nil {
				t.Fatalf("CreateWebhook: %v", err)
			}
			if created.ID == "" || created.Enabled || created.Title != "upvest-relay" || !slices.Equal(created.Type, []string{"ORDER", "USER"}) || created.Config != *cfg {
				t.Errorf("created = %+v", created)
			}
			updated, err := c.UpdateWebhook(ctx, created.ID, upvest.WebhookUpdate{Enabled: ptr(true), Type: []string{"ALL"}})
			if err != nil {
				t.Fatalf("UpdateWebhook: %v", err)
			}
			if !updated.Enabled || !slices.Equal(updated.Type, []string{"ALL"}) || updated.Title != "upvest-relay" {
				t.Errorf("updated = %+v", updated)
			}
			got, err := c.GetWebhook(ctx, created.ID)
			if err != nil {
				t.Fatalf("GetWebhook: %v", err)
			}
			if got.ID != created.ID || !got.Enabled || got.CreatedAt.IsZero() {
				t.Errorf("got = %+v", got)
			}
			list, err := c.ListWebhooks(ctx)
			if err != nil {
				t.Fatalf("ListWebhooks: %v", err)
			}
			if len(list) != 1 || list[0].ID != created.ID {
				t.Errorf("list = %+v", list)
			}
			if err := c.TestWebhook(ctx, created.ID); err != nil {
				t.Fatalf("TestWebhook: %v", err)
			}
			if err := c.DeleteWebhook(ctx, created.ID); err != nil {
				t.Fatalf("DeleteWebhook: %v", err)
			}
			if _, err := c.GetWebhook(ctx, created.ID); !errors.Is(err, upvest.ErrNotFound) {
				t.Errorf("GetWebhook after delete: err = %v, want ErrNotFound", err)
			}

			all := f.requests("", "")
			if got, want := len(all), 8; got != want {
				t.Fatalf("server saw %d signed requests, want %d (token + 7 calls)", got, want)
			}
			if all[0].Path != "/auth/token" || all[0].Auth != "" {
				t.Errorf("first request %+v, want the token call without authorization", all[0])
			}
			for _, r := range all[1:] {
				if r.Auth != "Bearer token-1" {
					t.Errorf("%s %s: authorization %q, want the issued token", r.Method, r.Path, r.Auth)
				}
			}
		})
	}
}

func TestClientVerifyKeys(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P521()))
	c := f.client(t)
	if got, want := c.VerifyKeysURL(), f.srv.URL+"/auth/verify_keys"; got != want {
		t.Errorf("VerifyKeysURL() = %q, want %q", got, want)
	}
	resp, err := c.HTTPClient().Get(c.VerifyKeysURL())
	if err != nil {
		t.Fatalf("GET verify keys: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	if got := f.requests("GET", "/auth/verify_keys"); len(got) != 1 || got[0].Auth == "" {
		t.Errorf("verify keys requests %+v, want one, authorized", got)
	}
}

func TestClientTokenReuse(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	f.addHooks(1)
	c := f.client(t)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.ListWebhooks(context.Background()); err != nil {
				t.Errorf("ListWebhooks: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.issuedTokens(); got != 1 {
		t.Errorf("tokens issued = %d, want 1 (reused)", got)
	}
}

func TestClientTokenRefresh(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	f.expiresIn = 1 // within oauth2's expiry margin: stale at once
	c := f.client(t)
	for i := range 3 {
		if _, err := c.ListWebhooks(context.Background()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := f.issuedTokens(); got != 3 {
		t.Errorf("tokens issued = %d, want 3 (one per call)", got)
	}
	var auths []string
	for _, r := range f.requests("GET", "/webhooks") {
		auths = append(auths, r.Auth)
	}
	if want := []string{"Bearer token-1", "Bearer token-2", "Bearer token-3"}; !slices.Equal(auths, want) {
		t.Errorf("authorizations %q, want %q", auths, want)
	}
}

func TestClientDropsTokenOn401(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	c := f.client(t)
	var n atomic.Int32
	f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/webhooks" && n.Add(1) == 1 {
			problem(w, http.StatusUnauthorized, "token revoked")
			return true
		}
		return false
	})
	if _, err := c.ListWebhooks(context.Background()); !errors.Is(err, upvest.ErrUnauthorized) {
		t.Fatalf("first call: err = %v, want ErrUnauthorized", err)
	}
	if _, err := c.ListWebhooks(context.Background()); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if got := f.issuedTokens(); got != 2 {
		t.Errorf("tokens issued = %d, want 2 (a fresh one after the 401)", got)
	}
}

func TestClientTokenErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"rejected credentials", http.StatusUnauthorized, `{"type":"about:blank","status":401,"title":"invalid client"}`, upvest.ErrUnauthorized},
		{"unavailable, body echoing the secret", http.StatusServiceUnavailable, "upstream down; client_secret=" + testSecret, upvest.ErrUnavailable},
		{"throttled", http.StatusTooManyRequests, `{"title":"slow down"}`, upvest.ErrThrottled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, newECKey(t, elliptic.P256()))
			f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/auth/token" {
					return false
				}
				w.Header().Set("Retry-After", "600")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
				return true
			})
			c := f.client(t)
			_, err := c.GetWebhook(context.Background(), "abc")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var ae *upvest.APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.RequestID == "" {
				t.Errorf("APIError = %+v, want status %d with a request id", ae, tt.status)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q contains the client secret", err)
			}
			if got := f.requests("GET", ""); len(got) != 0 {
				t.Errorf("API called %d times without a token", len(got))
			}
		})
	}
}

func TestClientListWebhooksPaging(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	f.addHooks(2500)
	c := f.client(t)
	got, err := c.ListWebhooks(context.Background())
	if err != nil {
		t.Fatalf("ListWebhooks: %v", err)
	}
	if len(got) != 2500 {
		t.Fatalf("got %d webhooks, want 2500", len(got))
	}
	for i, w := range got {
		if want := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1); w.ID != want {
			t.Fatalf("webhook %d has id %s, want %s", i, w.ID, want)
		}
	}
	var queries []string
	for _, r := range f.requests("GET", "/webhooks") {
		queries = append(queries, r.Query)
	}
	want := []string{"limit=1000&offset=0", "limit=1000&offset=1000", "limit=1000&offset=2000"}
	if !slices.Equal(queries, want) {
		t.Errorf("queries %q, want %q", queries, want)
	}
}

func TestClientListWebhooksEnds(t *testing.T) {
	hook := func(i int) string {
		return fmt.Sprintf(`{"id":"h%d","title":"t","url":"https://x","enabled":true,"type":["ALL"],"config":{}}`, i)
	}
	tests := []struct {
		name      string
		page      func(call int) string // answer to the call-th list request (from 1)
		wantErr   error
		wantCount int
		wantCalls int
	}{
		{"empty", func(int) string { return `{"meta":{"total_count":0},"data":[]}` }, nil, 0, 1},
		{"total_count 0 but data", func(call int) string {
			return fmt.Sprintf(`{"meta":{"total_count":0},"data":[%s]}`, hook(call))
		}, nil, 1, 1},
		{"no total_count, short page", func(call int) string { return fmt.Sprintf(`{"meta":{},"data":[%s]}`, hook(call)) }, nil, 1, 1},
		{"total_count grows, then empty page", func(call int) string {
			if call > 3 {
				return `{"meta":{"total_count":100},"data":[]}`
			}
			return fmt.Sprintf(`{"meta":{"total_count":100},"data":[%s]}`, hook(call))
		}, nil, 3, 4},
		{"offset ignored", func(int) string { return fmt.Sprintf(`{"meta":{"total_count":5000},"data":[%s]}`, hook(1)) }, upvest.ErrBadResponse, 0, 2},
		{"never ends", func(call int) string {
			return fmt.Sprintf(`{"meta":{"total_count":1000000000},"data":[%s]}`, hook(call))
		}, upvest.ErrBadResponse, 0, 100},
		{"not JSON", func(int) string { return `<html>` }, upvest.ErrBadResponse, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, newECKey(t, elliptic.P256()))
			var calls atomic.Int32
			f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/webhooks" {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, tt.page(int(calls.Add(1))))
				return true
			})
			got, err := f.client(t).ListWebhooks(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != tt.wantCount {
				t.Errorf("got %d webhooks, want %d", len(got), tt.wantCount)
			}
			if got := int(calls.Load()); got != tt.wantCalls {
				t.Errorf("list calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestClientAPIErrors(t *testing.T) {
	sentinels := []error{upvest.ErrNotFound, upvest.ErrThrottled, upvest.ErrUnauthorized, upvest.ErrUnavailable}
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   error // nil: none of the sentinels
		check  func(t *testing.T, e *upvest.APIError)
	}{
		{
			name: "404 problem+json", status: 404,
			header: map[string]string{"Content-Type": "application/problem+json", "Upvest-Request-Id": "req-42"},
			body:   `{"type":"https://docs.upvest.co/errors/not-found","status":404,"title":"Not found","detail":"no such webhook","instance":"/webhooks/abc","request_id":"body-id"}`,
			want:   upvest.ErrNotFound,
			check: func(t *testing.T, e *upvest.APIError) {
				want := upvest.APIError{Status: 404, Type: "https://docs.upvest.co/errors/not-found", Title: "Not found",
					Detail: "no such webhook", Instance: "/webhooks/abc", RequestID: "req-42"}
				if got := *e; got.Status != want.Status || got.Type != want.Type || got.Title != want.Title ||
					got.Detail != want.Detail || got.Instance != want.Instance || got.RequestID != want.RequestID {
					t.Errorf("APIError = %+v, want %+v", got, want)
				}
				if msg := e.Error(); !strings.Contains(msg, "404") || !strings.Contains(msg, "req-42") || !strings.Contains(msg, "no such webhook") {
					t.Errorf("Error() = %q, want status, detail and request id", msg)
				}
			},
		},
		{
			name: "request id only in body", status: 404, header: map[string]string{"Upvest-Request-Id": ""}, body: `{"status":404,"request_id":"body-id"}`, want: upvest.ErrNotFound,
			check: func(t *testing.T, e *upvest.APIError) {
				if e.RequestID != "body-id" {
					t.Errorf("RequestID = %q, want body-id", e.RequestID)
				}
			},
		},
		{name: "401", status: 401, body: `{"title":"Unauthorized"}`, want: upvest.ErrUnauthorized},
		{name: "403", status: 403, body: `{"title":"Forbidden"}`, want: upvest.ErrUnauthorized},
		{
			name: "429 with Retry-After seconds", status: 429, header: map[string]string{"Retry-After": "120"}, want: upvest.ErrThrottled,
			check: func(t *testing.T, e *upvest.APIError) {
				if e.RetryAfter != 120*time.Second {
					t.Errorf("RetryAfter = %s, want 2m0s", e.RetryAfter)
				}
			},
		},
		{
			name: "429 with Retry-After date", status: 429, want: upvest.ErrThrottled,
			header: map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)},
			check: func(t *testing.T, e *upvest.APIError) {
				if e.RetryAfter < 58*time.Minute || e.RetryAfter > time.Hour {
					t.Errorf("RetryAfter = %s, want about 1h", e.RetryAfter)
				}
			},
		},
		{name: "500", status: 500, want: upvest.ErrUnavailable},
		{name: "502 plain text", status: 502, header: map[string]string{"Content-Type": "text/plain"}, body: "bad gateway", want: upvest.ErrUnavailable,
			check: func(t *testing.T, e *upvest.APIError) {
				if e.Title != "" || e.Detail != "" {
					t.Errorf("problem fields %+v from a non-JSON body", e)
				}
			}},
		{name: "503", status: 503, want: upvest.ErrUnavailable},
		{name: "504", status: 504, want: upvest.ErrUnavailable},
		{name: "406", status: 406, body: `{"title":"Not acceptable"}`},
		{name: "400", status: 400, body: `{"title":"Bad request"}`},
		{name: "302 not followed", status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, newECKey(t, elliptic.P256()))
			f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/auth/token" {
					return false
				}
				for k, v := range tt.header {
					if v == "" {
						w.Header().Del(k)
						continue
					}
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
				return true
			})
			_, err := f.client(t).GetWebhook(context.Background(), "abc")
			var ae *upvest.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if ae.Status != tt.status {
				t.Errorf("Status = %d, want %d", ae.Status, tt.status)
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), errors.Is(tt.want, s); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			if strings.Contains(err.Error(), "token-1") || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q contains a secret", err)
			}
			if tt.check != nil {
				tt.check(t, ae)
			}
			if got := len(f.requests("GET", "/webhooks/abc")); got != 1 {
				t.Errorf("GET calls = %d, want 1 (no retry)", got)
			}
		})
	}
}

func TestClientRetriesShortThrottleOnce(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	var n atomic.Int32
	f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "POST" && r.URL.Path == "/webhooks" && n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			problem(w, http.StatusTooManyRequests, "slow down")
			return true
		}
		return false
	})
	c := f.client(t)
	if _, err := c.CreateWebhook(context.Background(), upvest.WebhookCreate{Title: "t", URL: "https://x"}); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	posts := f.requests("POST", "/webhooks")
	if len(posts) != 2 {
		t.Fatalf("POST /webhooks sent %d times, want 2", len(posts))
	}
	if posts[0].IdemKey == "" || posts[0].IdemKey != posts[1].IdemKey {
		t.Errorf("idempotency keys %q and %q, want one key across the retry", posts[0].IdemKey, posts[1].IdemKey)
	}

	// A second logical call gets its own key.
	if _, err := c.CreateWebhook(context.Background(), upvest.WebhookCreate{Title: "u", URL: "https://y"}); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	posts = f.requests("POST", "/webhooks")
	if len(posts) != 3 || posts[2].IdemKey == posts[0].IdemKey {
		t.Errorf("second call reused the first call's idempotency key: %+v", posts)
	}
}

func TestClientDoesNotRetryThrottle(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		opts       []upvest.Option
	}{
		{"no Retry-After", "", nil},
		{"Retry-After over the cap", "120", nil},
		{"retry disabled", "0", []upvest.Option{upvest.WithRetryAfterCap(0)}},
		{"deadline too close", "1", []upvest.Option{upvest.WithTimeout(500 * time.Millisecond), upvest.WithRetryAfterCap(5 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, newECKey(t, elliptic.P256()))
			f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/webhooks/abc" {
					return false
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				problem(w, http.StatusTooManyRequests, "slow down")
				return true
			})
			_, err := f.client(t, tt.opts...).UpdateWebhook(context.Background(), "abc", upvest.WebhookUpdate{Enabled: ptr(true)})
			if !errors.Is(err, upvest.ErrThrottled) {
				t.Fatalf("err = %v, want ErrThrottled", err)
			}
			if got := len(f.requests("PATCH", "/webhooks/abc")); got != 1 {
				t.Errorf("PATCH sent %d times, want 1", got)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	for _, path := range []string{"/auth/token", "/webhooks/abc"} {
		t.Run(path, func(t *testing.T) {
			f := newFake(t, newECKey(t, elliptic.P256()))
			f.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != path {
					return false
				}
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return true
			})
			c := f.client(t, upvest.WithTimeout(100*time.Millisecond))
			_, err := c.GetWebhook(context.Background(), "abc")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestClientCanceled(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.client(t).ListWebhooks(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestClientInvalidArguments(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	c := f.client(t)
	ctx := context.Background()
	calls := map[string]func() error{
		"GetWebhook empty id":    func() error { _, err := c.GetWebhook(ctx, ""); return err },
		"UpdateWebhook empty id": func() error { _, err := c.UpdateWebhook(ctx, "", upvest.WebhookUpdate{}); return err },
		"DeleteWebhook empty id": func() error { return c.DeleteWebhook(ctx, "") },
		"TestWebhook empty id":   func() error { return c.TestWebhook(ctx, "") },
		"CreateWebhook no URL":   func() error { _, err := c.CreateWebhook(ctx, upvest.WebhookCreate{Title: "t"}); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, upvest.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if got := len(f.requests("", "")); got != 0 {
		t.Errorf("%d requests sent for invalid calls", got)
	}
}

func TestNewInvalid(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	tests := []struct {
		name                  string
		base, id, secret, kid string
		signer                crypto.Signer
		opts                  []upvest.Option
	}{
		{name: "relative base URL", base: "/api", id: "c", secret: testSecret, kid: "k", signer: key},
		{name: "ftp base URL", base: "ftp://x", id: "c", secret: testSecret, kid: "k", signer: key},
		{name: "base URL with userinfo", base: "https://u:" + testSecret + "@x", id: "c", secret: testSecret, kid: "k", signer: key},
		{name: "no client id", base: "https://x", secret: testSecret, kid: "k", signer: key},
		{name: "no secret", base: "https://x", id: "c", kid: "k", signer: key},
		{name: "no signer", base: "https://x", id: "c", secret: testSecret, kid: "k"},
		{name: "no key id", base: "https://x", id: "c", secret: testSecret, signer: key},
		{name: "zero timeout", base: "https://x", id: "c", secret: testSecret, kid: "k", signer: key, opts: []upvest.Option{upvest.WithTimeout(0)}},
		{name: "no scopes", base: "https://x", id: "c", secret: testSecret, kid: "k", signer: key, opts: []upvest.Option{upvest.WithScopes()}},
		{name: "negative retry cap", base: "https://x", id: "c", secret: testSecret, kid: "k", signer: key, opts: []upvest.Option{upvest.WithRetryAfterCap(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := upvest.New(tt.base, tt.id, tt.secret, tt.signer, tt.kid, tt.opts...)
			if !errors.Is(err, upvest.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestClientScopes(t *testing.T) {
	f := newFake(t, newECKey(t, elliptic.P256()))
	f.scope = "webhooks:read"
	c := f.client(t, upvest.WithScopes("webhooks:read"))
	if _, err := c.ListWebhooks(context.Background()); err != nil {
		t.Fatalf("ListWebhooks: %v", err)
	}
}
