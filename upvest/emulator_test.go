package upvest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// These tests run the real client against the real emulator: every request
// signature is checked by the emulator's own verifier, not by the signer's
// code.

// emuServer starts an emulator, closed when the test ends.
func emuServer(t *testing.T, opts ...emulator.Option) *emulator.Server {
	t.Helper()
	emu, err := emulator.New(opts...)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	t.Cleanup(emu.Close)
	return emu
}

// emuTenant registers a tenant on emu.
func emuTenant(t *testing.T, emu *emulator.Server, opts ...emulator.TenantOption) emulator.Tenant {
	t.Helper()
	ten, err := emu.NewTenant(opts...)
	if err != nil {
		t.Fatalf("NewTenant: %v", err)
	}
	return ten
}

// emuClient is a client for ten on emu.
func emuClient(t *testing.T, emu *emulator.Server, ten emulator.Tenant, opts ...upvest.Option) *upvest.Client {
	t.Helper()
	c, err := upvest.New(emu.URL(), ten.ClientID, ten.ClientSecret, ten.Key, ten.KeyID, opts...)
	if err != nil {
		t.Fatalf("upvest.New: %v", err)
	}
	return c
}

// emuSetup is an emulator, a tenant of it and a client of that tenant.
func emuSetup(t *testing.T, opts ...upvest.Option) (*emulator.Server, emulator.Tenant, *upvest.Client) {
	t.Helper()
	emu := emuServer(t)
	ten := emuTenant(t, emu)
	return emu, ten, emuClient(t, emu, ten, opts...)
}

// noAuthFailures fails the test if the emulator refused any request.
func noAuthFailures(t *testing.T, emu *emulator.Server) {
	t.Helper()
	if got := emu.SignatureFailures(); len(got) != 0 {
		t.Errorf("signature failures %+v, want none", got)
	}
	if got := emu.AuthFailures(); len(got) != 0 {
		t.Errorf("auth failures %+v, want none", got)
	}
}

func TestEmulatorWebhookLifecycle(t *testing.T) {
	tests := []struct {
		name string
		opts []emulator.TenantOption
		want string // %T of the tenant key
	}{
		{"P-521", nil, "*ecdsa.PrivateKey"},
		{"Ed25519", []emulator.TenantOption{emulator.WithEd25519()}, "ed25519.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu := emuServer(t)
			ten := emuTenant(t, emu, tt.opts...)
			if got := fmt.Sprintf("%T", ten.Key); got != tt.want {
				t.Fatalf("tenant key %s, want %s", got, tt.want)
			}
			// Sign with the key as the relay loads it: the PEM the
			// emulator hands out, read by LoadSigningKey.
			pemBytes, err := ten.KeyPEM()
			if err != nil {
				t.Fatalf("KeyPEM: %v", err)
			}
			keyFile := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			if ten.Key, err = upvest.LoadSigningKey(keyFile); err != nil {
				t.Fatalf("LoadSigningKey: %v", err)
			}
			c := emuClient(t, emu, ten)
			ctx := t.Context()

			var tests atomic.Int32
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if r.Method == http.MethodPost && bytes.Contains(body, []byte(`"WEBHOOK.TEST"`)) {
					tests.Add(1)
				}
			}))
			t.Cleanup(recv.Close)

			created, err := c.CreateWebhook(ctx, upvest.WebhookCreate{Title: "relay", URL: recv.URL + "/upvest", Type: []string{"ALL"}})
			if err != nil {
				t.Fatalf("CreateWebhook: %v", err)
			}
			if created.ID == "" || created.Enabled || created.Title != "relay" || created.URL != recv.URL+"/upvest" {
				t.Errorf("created %+v, want an id, disabled, the title and URL sent", created)
			}
			if created.Config.Delay == "" || created.Config.MaxPackageSize == 0 {
				t.Errorf("created config %+v, want the emulator's defaults", created.Config)
			}

			got, err := c.GetWebhook(ctx, created.ID)
			if err != nil {
				t.Fatalf("GetWebhook: %v", err)
			}
			if got.ID != created.ID || got.Enabled || !got.CreatedAt.Equal(created.CreatedAt) {
				t.Errorf("got %+v, want %+v", got, created)
			}

			wantCfg := upvest.WebhookConfig{Delay: "10s", MaxPackageSize: 2048}
			updated, err := c.UpdateWebhook(ctx, created.ID, upvest.WebhookUpdate{
				Title:   ptr("relay (prod)"),
				Type:    []string{"ORDER", "EXECUTION"},
				Enabled: ptr(true),
				Config:  &wantCfg,
			})
			if err != nil {
				t.Fatalf("UpdateWebhook: %v", err)
			}
			if !updated.Enabled || updated.Title != "relay (prod)" || !slices.Equal(updated.Type, []string{"ORDER", "EXECUTION"}) ||
				updated.Config != wantCfg || updated.URL != created.URL || updated.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("updated %+v, want enabled, new title, types and config, same URL", updated)
			}
			if emuView, ok := emu.Webhook(created.ID); !ok || !emuView.Enabled || emuView.Title != "relay (prod)" ||
				emuView.Config.Delay != "10s" || emuView.Config.MaxPackageSize != 2048 {
				t.Errorf("emulator holds %+v (found %t), want the update applied", emuView, ok)
			}

			list, err := c.ListWebhooks(ctx)
			if err != nil {
				t.Fatalf("ListWebhooks: %v", err)
			}
			if len(list) != 1 || list[0].ID != created.ID || !list[0].Enabled {
				t.Errorf("list %+v, want just the enabled webhook %s", list, created.ID)
			}

			if err := c.TestWebhook(ctx, created.ID); err != nil {
				t.Fatalf("TestWebhook: %v", err)
			}
			testkit.Eventually(t, 5*time.Second, "the test package", func() bool { return tests.Load() == 1 && emu.Delivered(created.ID).TestAttempts == 1 })

			if err := c.DeleteWebhook(ctx, created.ID); err != nil {
				t.Fatalf("DeleteWebhook: %v", err)
			}
			if _, err := c.GetWebhook(ctx, created.ID); !errors.Is(err, upvest.ErrNotFound) {
				t.Errorf("GetWebhook after delete: err = %v, want ErrNotFound", err)
			}
			if err := c.DeleteWebhook(ctx, created.ID); !errors.Is(err, upvest.ErrNotFound) {
				t.Errorf("DeleteWebhook again: err = %v, want ErrNotFound", err)
			}
			if list, err := c.ListWebhooks(ctx); err != nil || len(list) != 0 {
				t.Errorf("list after delete: %+v, %v, want none", list, err)
			}

			for _, call := range []struct {
				method, path string
				want         int
			}{
				{"POST", "/auth/token", 1},
				{"POST", "/webhooks", 1},
				{"GET", "/webhooks/{id}", 2},
				{"PATCH", "/webhooks/{id}", 1},
				{"GET", "/webhooks", 2},
				{"POST", "/webhooks/{id}/test", 1},
				{"DELETE", "/webhooks/{id}", 2},
			} {
				if got := emu.CallCount(call.method, call.path); got != call.want {
					t.Errorf("%s %s called %d times, want %d", call.method, call.path, got, call.want)
				}
			}
			noAuthFailures(t, emu)
		})
	}
}

func TestEmulatorTokenRefresh(t *testing.T) {
	t.Parallel()
	const lifetime = time.Second // the emulator's shortest
	emu := emuServer(t, emulator.WithTokenLifetime(lifetime))
	ten := emuTenant(t, emu)
	c := emuClient(t, emu, ten)
	const calls = 3
	for i := range calls {
		if i > 0 {
			// Waiting for the clock, not for an event: the previous
			// call's token must have expired at the emulator.
			time.Sleep(lifetime + 100*time.Millisecond)
		}
		if _, err := c.ListWebhooks(t.Context()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := emu.CallCount("POST", "/auth/token"); got < 2 {
		t.Errorf("tokens issued = %d, want more than 1", got)
	}
	if got := emu.CallCount("GET", "/webhooks"); got != calls {
		t.Errorf("GET /webhooks called %d times, want %d", got, calls)
	}
	noAuthFailures(t, emu)
}

func TestEmulatorListPaging(t *testing.T) {
	t.Parallel()
	emu, ten, c := emuSetup(t)
	const n = 2100 // three pages of at most 1000
	want := make([]string, 0, n)
	for i := range n {
		w, err := emu.CreateWebhook(ten.ClientID, emulator.Webhook{
			Title: fmt.Sprintf("hook %d", i),
			URL:   fmt.Sprintf("https://relay.example.com/hooks/%d", i),
		})
		if err != nil {
			t.Fatalf("emulator CreateWebhook %d: %v", i, err)
		}
		want = append(want, w.ID)
	}
	// Another tenant's webhooks are not listed.
	other := emuTenant(t, emu)
	if _, err := emu.CreateWebhook(other.ClientID, emulator.Webhook{Title: "other", URL: "https://other.example.com/"}); err != nil {
		t.Fatalf("emulator CreateWebhook: %v", err)
	}

	list, err := c.ListWebhooks(t.Context())
	if err != nil {
		t.Fatalf("ListWebhooks: %v", err)
	}
	count := map[string]int{}
	for _, w := range list {
		count[w.ID]++
	}
	for id, k := range count {
		if k != 1 {
			t.Errorf("webhook %s listed %d times, want once", id, k)
		}
	}
	got := make([]string, 0, len(list))
	for _, w := range list {
		got = append(got, w.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listed %d webhooks, want the %d created", len(got), len(want))
	}
	if got := emu.CallCount("GET", "/webhooks"); got != 3 {
		t.Errorf("GET /webhooks called %d times, want 3 pages", got)
	}
	noAuthFailures(t, emu)
}

func TestEmulatorThrottled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter time.Duration
		times      int // 0: every request
		wantErr    bool
		wantCalls  int
	}{
		// The client waits out a Retry-After up to its cap (2 s by
		// default) and retries once.
		{"short Retry-After is retried once", time.Second, 1, false, 2},
		{"still throttled after the retry", time.Second, 0, true, 2},
		// A longer one is left to the caller, with RetryAfter parsed.
		{"long Retry-After is returned", 30 * time.Second, 1, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu, _, c := emuSetup(t)
			emu.InjectFault(emulator.Fault{Method: "GET", PathPrefix: "/webhooks", Status: http.StatusTooManyRequests, RetryAfter: tt.retryAfter, Times: tt.times})
			_, err := c.ListWebhooks(t.Context())
			if got := emu.CallCount("GET", "/webhooks"); got != tt.wantCalls {
				t.Errorf("GET /webhooks called %d times, want %d", got, tt.wantCalls)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("ListWebhooks: %v", err)
				}
				return
			}
			if !errors.Is(err, upvest.ErrThrottled) {
				t.Fatalf("err = %v, want ErrThrottled", err)
			}
			var ae *upvest.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want an *APIError", err, err)
			}
			if ae.Status != http.StatusTooManyRequests || ae.RetryAfter != tt.retryAfter || ae.RequestID == "" {
				t.Errorf("APIError status %d, retry after %s, request id %q; want 429, %s, an id", ae.Status, ae.RetryAfter, ae.RequestID, tt.retryAfter)
			}
		})
	}
}

func TestEmulatorUnavailable(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			emu, _, c := emuSetup(t)
			emu.InjectFault(emulator.Fault{Method: "GET", PathPrefix: "/webhooks/", Status: status, RetryAfter: time.Second, Times: 1})
			_, err := c.GetWebhook(t.Context(), "6a9b6f53-2a3b-4f27-9d1c-0d3c6f0a5b11")
			if !errors.Is(err, upvest.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			var ae *upvest.APIError
			if !errors.As(err, &ae) || ae.Status != status {
				t.Errorf("err = %v, want an *APIError with status %d", err, status)
			}
			if got := emu.CallCount("GET", "/webhooks/{id}"); got != 1 {
				t.Errorf("GET /webhooks/{id} called %d times, want 1 (no retry)", got)
			}
			// The fault is used up: the next call reaches the API.
			if _, err := c.GetWebhook(t.Context(), "6a9b6f53-2a3b-4f27-9d1c-0d3c6f0a5b11"); !errors.Is(err, upvest.ErrNotFound) {
				t.Errorf("second call: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestEmulatorTimeout(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/auth/token", "/webhooks"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			emu, _, c := emuSetup(t, upvest.WithTimeout(200*time.Millisecond))
			emu.InjectFault(emulator.Fault{PathPrefix: path, Latency: 10 * time.Second})
			if _, err := c.ListWebhooks(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestEmulatorWrongSecret(t *testing.T) {
	t.Parallel()
	emu := emuServer(t)
	ten := emuTenant(t, emu)
	ten.ClientSecret = "not-the-secret"
	c := emuClient(t, emu, ten)
	_, err := c.ListWebhooks(t.Context())
	if !errors.Is(err, upvest.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("err = %v, quotes the client secret", err)
	}
	if got := emu.SignatureFailures(); len(got) != 0 {
		t.Errorf("signature failures %+v, want none (the request was signed correctly)", got)
	}
	fails := emu.AuthFailures()
	if len(fails) != 1 || fails[0].Path != "/auth/token" || fails[0].Detail != "invalid client credentials" || fails[0].ClientID != ten.ClientID {
		t.Errorf("auth failures %+v, want one at /auth/token: invalid client credentials", fails)
	}
	if got := emu.CallCount("GET", "/webhooks"); got != 0 {
		t.Errorf("GET /webhooks called %d times without a token, want 0", got)
	}
}

func TestEmulatorUnknownSigningKey(t *testing.T) {
	t.Parallel()
	otherEC, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		key        func(emulator.Tenant) crypto.Signer
		keyID      func(emulator.Tenant) string
		wantDetail string
	}{
		{
			"other P-521 key under the tenant's key id",
			func(emulator.Tenant) crypto.Signer { return otherEC },
			func(ten emulator.Tenant) string { return ten.KeyID },
			"signature does not verify",
		},
		{
			"Ed25519 key under the tenant's P-521 key id",
			func(emulator.Tenant) crypto.Signer { return otherEd },
			func(ten emulator.Tenant) string { return ten.KeyID },
			"signature does not verify",
		},
		{
			"tenant's key under an unknown key id",
			func(ten emulator.Tenant) crypto.Signer { return ten.Key },
			func(emulator.Tenant) string { return "not-registered" },
			`unknown keyid "not-registered"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu := emuServer(t)
			ten := emuTenant(t, emu)
			c, err := upvest.New(emu.URL(), ten.ClientID, ten.ClientSecret, tt.key(ten), tt.keyID(ten))
			if err != nil {
				t.Fatalf("upvest.New: %v", err)
			}
			_, err = c.ListWebhooks(t.Context())
			var ae *upvest.APIError
			if !errors.Is(err, upvest.ErrUnauthorized) || !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
				t.Fatalf("err = %v, want a 401 matching ErrUnauthorized", err)
			}
			fails := emu.SignatureFailures()
			if len(fails) != 1 {
				t.Fatalf("signature failures %+v, want 1", fails)
			}
			f := fails[0]
			if f.Path != "/auth/token" || f.ClientID != ten.ClientID || !f.Signature || !strings.Contains(f.Detail, tt.wantDetail) {
				t.Errorf("failure %+v, want one at /auth/token for %s saying %q", f, ten.ClientID, tt.wantDetail)
			}
			if !strings.Contains(ae.Detail, tt.wantDetail) {
				t.Errorf("problem detail %q, want it to say %q", ae.Detail, tt.wantDetail)
			}
		})
	}
}

func TestEmulatorVerifyKeys(t *testing.T) {
	t.Parallel()
	emu, _, c := emuSetup(t)

	fetch := func() map[string][]byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.VerifyKeysURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("GET verify keys: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET verify keys: status %d, want 200", resp.StatusCode)
		}
		var set struct {
			Keys []struct{ Kid, Kty, Crv, X, Y string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatalf("decode JWKS: %v", err)
		}
		out := map[string][]byte{}
		for _, k := range set.Keys {
			if k.Kty != "EC" || k.Crv != "P-521" {
				t.Errorf("key %s: kty %q crv %q, want EC P-521", k.Kid, k.Kty, k.Crv)
			}
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if errX != nil || errY != nil {
				t.Fatalf("key %s: bad coordinates: %v %v", k.Kid, errX, errY)
			}
			out[k.Kid] = append(append([]byte{4}, x...), y...) // uncompressed point
		}
		return out
	}
	check := func(got map[string][]byte) {
		t.Helper()
		want := emu.SigningKeys()
		if len(got) != len(want) {
			t.Errorf("JWKS has %d keys, want %d", len(got), len(want))
		}
		for kid, pub := range want {
			wb, err := pub.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[kid], wb) {
				t.Errorf("JWKS key %s = %x, want %x", kid, got[kid], wb)
			}
		}
	}

	first := fetch()
	check(first)
	if _, ok := first[emu.SigningKeyID()]; !ok {
		t.Errorf("JWKS kids %v, want the current %s", slices.Collect(maps.Keys(first)), emu.SigningKeyID())
	}

	newKid, err := emu.RotateKey()
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	second := fetch()
	check(second)
	if _, ok := second[newKid]; !ok || len(second) != 2 {
		t.Errorf("after rotation JWKS kids %v, want the new %s and the retained old one", slices.Collect(maps.Keys(second)), newKid)
	}
	noAuthFailures(t, emu)
}
