package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// startApp runs the service of cfg in the background and returns it once
// the stream is ready, and a stop function that cancels it and returns
// Run's error.
func startApp(t *testing.T, cfg config.Config) (*service.Service, func() error) {
	t.Helper()
	return launchApp(t, cfg)()
}

// launchApp starts the service of cfg in the background at once and
// returns a function that waits (in the test goroutine) until its stream is
// ready, so that several services can be started at the same moment.
func launchApp(t *testing.T, cfg config.Config) (wait func() (*service.Service, func() error)) {
	t.Helper()
	svc, err := newService(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var stopped bool
	var result error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return func() (*service.Service, func() error) {
		t.Helper()
		select {
		case <-svc.Ready():
			return svc, stop
		case err := <-done:
			stopped = true
			cancel()
			t.Fatalf("service ended before it was ready: %v", err)
		case <-time.After(90 * time.Second):
			t.Fatal("service not ready within 90s")
		}
		return nil, nil
	}
}

// keeperState is a's control-loop state; the control loop must be on.
func keeperState(t *testing.T, a *service.Service) keeper.State {
	t.Helper()
	st, ok := a.KeeperState()
	if !ok {
		t.Fatal("the control loop is off")
	}
	return st
}

// testConfig loads the configuration of env plus a fresh data dir and
// loopback listeners on port 0, where env does not set them.
func testConfig(t *testing.T, env ...string) config.Config {
	t.Helper()
	defaults := []string{"RELAY_DATA_DIR=" + t.TempDir(), "RELAY_ADMIN_ADDR=127.0.0.1:0", "RELAY_LISTEN_ADDR=127.0.0.1:0"}
	return configtest.Load(t, append(defaults, env...)...)
}

// TestServeWithOnlyAKeysFile is the contract's smallest deployment: only
// RELAY_VERIFY_KEYS_FILE set, embedded JetStream, a signed package in,
// its events on the stream, ready, clean stop.
func TestServeWithOnlyAKeysFile(t *testing.T) {
	t.Parallel()
	emu, keysFile := emulatorWithKeysFile(t)
	a, stop := startApp(t, testConfig(t, "RELAY_VERIFY_KEYS_FILE="+keysFile))

	get := func(path string) int {
		resp, err := http.Get("http://" + a.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.Eventually(t, 5*time.Second, "/readyz 200", func() bool { return get("/readyz") == http.StatusOK })
	if got := get("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", got)
	}

	gen := emulator.NewGenerator(1)
	events := gen.Batch(5)
	body := packageBody(t, events, "4b1d0c1e-0000-4000-8000-000000000001")
	resp, err := http.Post("http://"+a.IngressAddr()+"/webhooks/upvest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned package: %d, want 401", resp.StatusCode)
	}
	if got := post(t, emu, body, a); got != http.StatusOK {
		t.Fatalf("signed package: %d, want 200", got)
	}
	if got := post(t, emu, body, a); got != http.StatusOK {
		t.Fatalf("retried package: %d, want 200", got)
	}
	if got := streamMsgs(t, a.JetStream(), "UPVEST"); got != uint64(len(events)) {
		t.Errorf("stream holds %d messages, want %d", got, len(events))
	}

	// Upvest sends an event larger than max_package_size alone; it must be
	// stored, not refused forever.
	big := gen.Of("REPORT")
	big.Object = map[string]string{"id": "big-report", "content": strings.Repeat("x", 3<<20)}
	body = packageBody(t, []emulator.Event{big}, "4b1d0c1e-0000-4000-8000-000000000001")
	if got := post(t, emu, body, a); got != http.StatusOK {
		t.Fatalf("package with a 3 MiB event: %d, want 200", got)
	}
	if got := streamMsgs(t, a.JetStream(), "UPVEST"); got != uint64(len(events))+1 {
		t.Errorf("stream holds %d messages, want %d", got, len(events)+1)
	}
	// Every metric the contract names is exposed, the keeper's at 0 with
	// the control loop off.
	resp, err = http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`relay_packages_total{result="ok"} 3`,
		`relay_events_published_total{family="`,
		`relay_events_deduplicated_total 5`,
		`relay_events_deadlettered_total 0`,
		`relay_rejections_total{reason="no_signature"} 1`,
		`relay_package_duration_seconds_bucket`,
		`relay_publish_duration_seconds_bucket`,
		"relay_subscription_enabled 0",
		"relay_keeper_leader 0",
		`relay_ready{check="keys"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run after stop: %v", err)
	}
}

// TestDeliveryThroughRelayExactlyOnceAcrossRestart drives the emulator's
// delivery engine through the real relay: thousands of events, then a relay
// restart while the emulator keeps retrying, and every event is in the
// stream exactly once.
func TestDeliveryThroughRelayExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	emu, err := emulator.New(emulator.WithDelayScale(0.05), emulator.WithBackoffScale(0.05))
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	tenant, keyFile := newTenant(t, emu)
	port := brokertest.FreePorts(t, 1)[0]
	hook := fmt.Sprintf("http://127.0.0.1:%d/webhooks/upvest", port)
	cfg := testConfig(t,
		"RELAY_LISTEN_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"RELAY_UPVEST_BASE_URL="+emu.URL(),
		"RELAY_UPVEST_CLIENT_ID="+tenant.ClientID,
		"RELAY_UPVEST_CLIENT_SECRET="+tenant.ClientSecret,
		"RELAY_UPVEST_SIGNING_KEY_FILE="+keyFile,
		"RELAY_UPVEST_SIGNING_KEY_ID="+tenant.KeyID,
		"RELAY_WEBHOOK_URL="+hook,
		"RELAY_WEBHOOK_DELAY=1s",
		"RELAY_WEBHOOK_MAX_PACKAGE_SIZE=20000",
		"RELAY_RECONCILE_INTERVAL=1s",
	)

	a, stop := startApp(t, cfg)
	var webhookID string
	testkit.Eventually(t, 10*time.Second, "subscription registered and enabled", func() bool {
		hooks := emu.Webhooks(tenant.ClientID)
		if len(hooks) == 1 && hooks[0].Enabled {
			webhookID = hooks[0].ID
			return true
		}
		return false
	})

	testkit.Eventually(t, 10*time.Second, "the keeper's test delivery arrived", func() bool {
		return keeperState(t, a).TestDelivery == "arrived"
	})

	gen := emulator.NewGenerator(7)
	const first, second = 3000, 1000
	publish(t, emu, tenant.ClientID, gen, first)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := emu.WaitDelivered(ctx, webhookID, first); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// The relay is down: Upvest keeps the events and retries, blocked.
	publish(t, emu, tenant.ClientID, gen, second)
	testkit.Eventually(t, 10*time.Second, "emulator retrying against the stopped relay", func() bool {
		return emu.Delivered(webhookID).ConsecutiveFailures >= 2
	})

	a, _ = startApp(t, cfg)
	if err := emu.WaitDelivered(ctx, webhookID, first+second); err != nil {
		t.Fatal(err)
	}
	if got := emu.Webhooks(tenant.ClientID); len(got) != 1 {
		t.Errorf("restart left %d subscriptions, want 1", len(got))
	}
	// Every published event, plus the test delivery the keeper asked for
	// (a real, signed event like any other).
	ids := streamIDs(t, a.JetStream(), "UPVEST")
	if len(ids) != first+second+1 {
		t.Errorf("stream holds %d distinct events, want %d", len(ids), first+second+1)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
}

// emulatorWithKeysFile starts an emulator and writes its verification
// keys where RELAY_VERIFY_KEYS_FILE can name them.
func emulatorWithKeysFile(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	jwks, err := emu.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keys, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return emu, keys
}

// newTenant creates a tenant at the emulator and writes its signing key
// where RELAY_UPVEST_SIGNING_KEY_FILE can name it.
func newTenant(t *testing.T, emu *emulator.Server) (emulator.Tenant, string) {
	t.Helper()
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := tenant.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "tenant.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return tenant, keyFile
}

func publish(t *testing.T, emu *emulator.Server, clientID string, gen *emulator.Generator, n int) {
	t.Helper()
	for sent := 0; sent < n; sent += 100 {
		if err := emu.Publish(clientID, gen.Batch(min(100, n-sent))...); err != nil {
			t.Fatal(err)
		}
	}
}

func packageBody(t *testing.T, events []emulator.Event, webhookID string) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"payload":[`)
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		obj, err := json.Marshal(e.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, `{"id":%q,"created_at":%q,"type":%q,"object":%s,"webhook_id":%q}`,
			e.ID, e.CreatedAt.Format(time.RFC3339Nano), e.Type, obj, webhookID)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// streamIDs reads the whole stream and counts messages per ce-id.
func streamIDs(t *testing.T, js jetstream.JetStream, name string) map[string]int {
	t.Helper()
	ctx := context.Background()
	total := streamMsgs(t, js, name)
	c, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for seen := uint64(0); seen < total; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			ids[m.Headers().Get("ce-id")]++
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
		if got == 0 {
			t.Fatalf("stream read stalled after %d of %d messages", seen, total)
		}
		seen += uint64(got)
	}
	return ids
}

// post posts body to a's ingress, signed as Upvest signs deliveries, and
// returns the status (0 when the request failed).
func post(t *testing.T, emu *emulator.Server, body []byte, a *service.Service) int {
	t.Helper()
	return postConcurrently(t, emu, body, a)[0]
}

// postUntilOK posts body to a as Upvest delivers: the same package,
// signed anew each attempt, again after a short pause until it is answered
// 200 or within passes. It returns the last status.
func postUntilOK(t *testing.T, emu *emulator.Server, body []byte, a *service.Service, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := 50 * time.Millisecond
	for {
		got := post(t, emu, body, a)
		if got == http.StatusOK || time.Now().After(deadline) {
			return got
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Second)
	}
}

// postConcurrently posts body, signed as Upvest signs it, to every app at
// once and returns their statuses in order (0 when the request failed).
func postConcurrently(t *testing.T, emu *emulator.Server, body []byte, apps ...*service.Service) []int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	got := make([]int, len(apps))
	var wg sync.WaitGroup
	for i, a := range apps {
		req, err := http.NewRequest(http.MethodPost, "http://"+a.IngressAddr()+"/webhooks/upvest", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if err := emu.SignDelivery(req, body); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("post to %s: %v", a.IngressAddr(), err)
				return
			}
			resp.Body.Close()
			got[i] = resp.StatusCode
		})
	}
	wg.Wait()
	return got
}
