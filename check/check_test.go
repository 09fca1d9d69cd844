package check_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/check"
	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// setup is an installation: an emulator with a tenant, an embedded
// JetStream with the relay's stream, a real relay handler listening on
// loopback, and its subscription registered and enabled.
type setup struct {
	emu     *emulator.Server
	tenant  emulator.Tenant
	srv     *server.Server
	js      jetstream.JetStream
	env     []string
	webhook emulator.Webhook
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	emu, err := emulator.New(emulator.WithTimeScale(0.001))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := tenant.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "tenant.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _, js := brokertest.New(t)
	ctx := context.Background()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: 720 * time.Hour, Replicas: 1, Duplicates: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}

	// A real relay handler verifying with the emulator's keys.
	jwks, err := emu.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	h, err := relay.NewHandler("/webhooks/upvest", v, js, relay.WithSourceBase(emu.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	webhookURL := "http://" + ln.Addr().String() + "/webhooks/upvest"
	wh, err := emu.CreateWebhook(tenant.ClientID, emulator.Webhook{Title: "upvest-relay", URL: webhookURL, Enabled: true,
		Config: emulator.WebhookConfig{Delay: "5s", MaxPackageSize: 1048576}})
	if err != nil {
		t.Fatal(err)
	}
	return &setup{emu: emu, tenant: tenant, srv: srv, js: js, webhook: wh, env: []string{
		"RELAY_NATS_URL=" + srv.ClientURL(),
		"RELAY_MAX_BODY_BYTES=1048576",
		"RELAY_UPVEST_BASE_URL=" + emu.URL(),
		"RELAY_UPVEST_CLIENT_ID=" + tenant.ClientID,
		"RELAY_UPVEST_CLIENT_SECRET=" + tenant.ClientSecret,
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + keyFile,
		"RELAY_UPVEST_SIGNING_KEY_ID=" + tenant.KeyID,
		"RELAY_WEBHOOK_URL=" + webhookURL,
	}}
}

func runCheck(t *testing.T, env []string, opts ...check.Option) (map[string]check.Result, bool) {
	t.Helper()
	c, err := check.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]check.Result{}
	var order []string
	passed := c.Run(context.Background(), configtest.Env(env...), func(r check.Result) {
		got[r.Check] = r
		order = append(order, r.Check)
		t.Log(r)
	})
	if strings.Join(order, ",") != strings.Join(check.Names(), ",") {
		t.Errorf("checks reported %v, want %v", order, check.Names())
	}
	return got, passed
}

func wantStatus(t *testing.T, got map[string]check.Result, name string, s check.Status, detail string) {
	t.Helper()
	r := got[name]
	if r.Status != s || !strings.Contains(r.Detail, detail) {
		t.Errorf("%s: got %q, want status %s with detail containing %q", name, r, s, detail)
	}
}

func TestCheckAllPassWithTestDelivery(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	got, passed := runCheck(t, s.env, check.WithTestDelivery(20*time.Second))
	if !passed {
		t.Errorf("passed = false, want true")
	}
	for _, n := range check.Names() {
		wantStatus(t, got, n, check.OK, "")
	}
	wantStatus(t, got, check.VerifyKeys, check.OK, s.emu.SigningKeyID())
	wantStatus(t, got, check.Subscription, check.OK, s.webhook.ID)
	wantStatus(t, got, check.NATS, check.OK, "JetStream on")
	wantStatus(t, got, check.Stream, check.OK, "batch publishing on")
	testkit.Eventually(t, 5*time.Second, "emulator did not count one test package", func() bool {
		return s.emu.Delivered(s.webhook.ID).TestAttempts == 1
	})
}

func TestCheckWithoutTestDeliverySkipsIt(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	got, passed := runCheck(t, s.env)
	if !passed {
		t.Errorf("passed = false, want true (a skipped check is not a failure)")
	}
	wantStatus(t, got, check.TestDelivery, check.Skipped, "--test-delivery")
	if st := s.emu.Delivered(s.webhook.ID); st.TestAttempts != 0 {
		t.Errorf("emulator sent %d test packages, want 0", st.TestAttempts)
	}
}

func TestCheckFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(t *testing.T, s *setup) []string
		failed  string
		detail  string
		skipped []string
	}{
		{name: "wrong secret", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_UPVEST_CLIENT_SECRET=wrong")
		}, failed: check.UpvestToken, detail: "401", skipped: []string{check.VerifyKeys}},
		{name: "stream missing", edit: func(t *testing.T, s *setup) []string {
			if err := s.js.DeleteStream(context.Background(), "UPVEST"); err != nil {
				t.Fatal(err)
			}
			return s.env
		}, failed: check.Stream, detail: "not found", skipped: []string{check.TestDelivery}},
		{name: "stream drift", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_STREAM_MAX_AGE=24h", "RELAY_DUPLICATE_WINDOW=1h")
		}, failed: check.Stream, detail: "RELAY_STREAM_MAX_AGE 24h"},
		{name: "max payload", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_MAX_BODY_BYTES=33554432")
		}, failed: check.NATS, detail: "max_payload"},
		{name: "nats down", edit: func(t *testing.T, s *setup) []string {
			brokertest.Down(t, s.srv)
			return s.env
		}, failed: check.NATS, detail: s0, skipped: []string{check.Stream}},
		{name: "subscription disabled and drifted", edit: func(t *testing.T, s *setup) []string {
			if err := s.emu.SetWebhookEnabled(s.webhook.ID, false); err != nil {
				t.Fatal(err)
			}
			return append(s.env, "RELAY_WEBHOOK_DELAY=2s")
		}, failed: check.Subscription, detail: "disabled"},
		{name: "no subscription", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_WEBHOOK_URL=https://relay.example.com/webhooks/upvest")
		}, failed: check.Subscription, detail: "no subscription", skipped: []string{check.TestDelivery}},
		{name: "test delivery with the control loop off", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_WEBHOOK_URL=")
		}, failed: check.TestDelivery, detail: "RELAY_WEBHOOK_URL is empty", skipped: []string{check.Subscription}},
		{name: "bad keys file", edit: func(t *testing.T, s *setup) []string {
			f := filepath.Join(t.TempDir(), "keys.json")
			os.WriteFile(f, []byte(`{"keys":[]}`), 0o600)
			return append(s.env, "RELAY_VERIFY_KEYS_FILE="+f)
		}, failed: check.VerifyKeys, detail: "no keys"},
		{name: "invalid config", edit: func(t *testing.T, s *setup) []string {
			return append(s.env, "RELAY_LISTN_ADDR=:8080")
		}, failed: check.Config, detail: "RELAY_LISTN_ADDR", skipped: []string{check.NATS, check.TestDelivery}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			env := tt.edit(t, s)
			// No relay reaches the stream in the failing cases that need
			// one, so the wait is short.
			got, passed := runCheck(t, env, check.WithTestDelivery(2*time.Second), check.WithStepTimeout(3*time.Second))
			if passed {
				t.Errorf("passed = true, want false")
			}
			wantStatus(t, got, tt.failed, check.Failed, tt.detail)
			for _, n := range tt.skipped {
				wantStatus(t, got, n, check.Skipped, "")
			}
			for _, r := range got {
				if strings.Contains(r.Detail, s.tenant.ClientSecret) {
					t.Errorf("%s detail shows the client secret", r.Check)
				}
			}
		})
	}
}

// s0 matches any detail.
const s0 = ""

func TestCheckEmbeddedWithoutRelayFailsNATS(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	env := append([]string{}, s.env[1:]...) // no RELAY_NATS_URL
	env = append(env, "RELAY_DATA_DIR="+t.TempDir())
	got, ok := runCheck(t, env)
	if ok {
		t.Error("check passed without NATS")
	}
	wantStatus(t, got, check.NATS, check.Failed, "no relay is running")
	wantStatus(t, got, check.Stream, check.Skipped, "needs NATS")

	// A relay running on the data dir records its server's URL.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, broker.URLFile), []byte(s.srv.ClientURL()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, passed := runCheck(t, append(env, "RELAY_DATA_DIR="+dir))
	wantStatus(t, got, check.NATS, check.OK, "JetStream on")
	if !passed {
		t.Errorf("passed = false with a running relay's embedded server")
	}
}

func TestFetchKeys(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	cfg := configtest.Load(t, s.env...)
	client, err := check.NewUpvestClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := check.FetchKeys(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.ParseKeys(body); err != nil {
		t.Fatalf("fetched keys do not parse: %v", err)
	}
	if kids := check.Kids(body); len(kids) != 1 || kids[0] != s.emu.SigningKeyID() {
		t.Errorf("kids %v, want [%s]", kids, s.emu.SigningKeyID())
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, o := range []check.Option{check.WithStepTimeout(0), check.WithTestDelivery(-time.Second)} {
		if _, err := check.New(o); err == nil {
			t.Errorf("New accepted an invalid option")
		}
	}
}
