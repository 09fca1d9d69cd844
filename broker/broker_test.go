package broker_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("port of %q: %v", rawURL, err)
	}
	return p
}

func TestStartEmbeddedServesJetStream(t *testing.T) {
	var logs testkit.LogBuffer
	e, err := broker.StartEmbedded(t.TempDir(), zerolog.New(&logs), broker.WithPort(-1))
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown()

	if got := e.ClientURL(); !strings.HasPrefix(got, "nats://127.0.0.1:") || portOf(t, got) == 0 {
		t.Errorf("ClientURL() = %q, want nats://127.0.0.1:<port>", got)
	}
	if got := logs.String(); !strings.Contains(got, e.ClientURL()) {
		t.Errorf("log = %q, want the client URL %s in it", got, e.ClientURL())
	}

	ctx := context.Background()
	for name, opt := range map[string]broker.ConnectOption{
		"tcp":        broker.WithName("tcp"),
		"in-process": broker.WithInProcess(e),
	} {
		nc, err := broker.Connect(ctx, e.ClientURL(), zerolog.Nop(), opt)
		if err != nil {
			t.Fatalf("%s: Connect: %v", name, err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatalf("%s: jetstream: %v", name, err)
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			t.Errorf("%s: AccountInfo: %v, want JetStream enabled", name, err)
		}
		if got := nc.MaxPayload(); got != broker.MaxPayload {
			t.Errorf("%s: MaxPayload() = %d, want %d (Upvest sends oversized events alone)", name, got, broker.MaxPayload)
		}
		nc.Close()
	}

	e.Shutdown()
	e.Shutdown() // idempotent
	if e.Server().Running() {
		t.Errorf("Running() after Shutdown = true, want false")
	}
}

func TestStartEmbeddedPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	e, err := broker.StartEmbedded(t.TempDir(), zerolog.Nop(), broker.WithPreferredPort(taken))
	if err != nil {
		t.Fatalf("StartEmbedded(preferred taken port): %v", err)
	}
	defer e.Shutdown()
	if got := portOf(t, e.ClientURL()); got == taken || got == 0 {
		t.Errorf("port = %d, want a random port other than the taken %d", got, taken)
	}

	_, err = broker.StartEmbedded(t.TempDir(), zerolog.Nop(), broker.WithPort(taken), broker.WithReadyTimeout(500*time.Millisecond))
	if !errors.Is(err, broker.ErrNotReady) {
		t.Errorf("StartEmbedded(WithPort(taken)) error = %v, want ErrNotReady", err)
	}

	if _, err := broker.StartEmbedded("", zerolog.Nop(), broker.WithPort(-1)); err == nil {
		t.Errorf("StartEmbedded(no data dir) error = nil, want an error")
	}
}

func TestConnectHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	nc, err := broker.Connect(ctx, "nats://"+addr, zerolog.Nop(),
		broker.WithNATSOptions(nats.ReconnectWait(20*time.Millisecond)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect(no server) = %v, %v; want context.DeadlineExceeded", nc, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect returned after %s, want about the 200ms deadline", d)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := broker.Connect(cancelled, "nats://"+addr, zerolog.Nop()); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func TestConnectWaitsForLateServerAndLogsStateChanges(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	var logs testkit.LogBuffer
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nc, err := broker.Connect(ctx, "nats://127.0.0.1:"+strconv.Itoa(port), zerolog.New(&logs),
			broker.WithNATSOptions(nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0)))
		done <- result{nc, err}
	}()

	srv := brokertest.StartServer(t, dir, port) // starts after Connect began retrying
	r := <-done
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	defer r.nc.Close()
	testkit.Eventually(t, 5*time.Second, "log shows 'NATS connected'", func() bool {
		return strings.Contains(logs.String(), "NATS connected")
	})

	up := brokertest.Down(t, srv)
	testkit.Eventually(t, 5*time.Second, "log shows 'NATS disconnected'", func() bool {
		return strings.Contains(logs.String(), "NATS disconnected")
	})
	if err := broker.Connected(r.nc)(context.Background()); !errors.Is(err, broker.ErrNotConnected) {
		t.Errorf("Connected check while down = %v, want ErrNotConnected", err)
	}
	up()
	testkit.Eventually(t, 5*time.Second, "log shows 'NATS reconnected'", func() bool {
		return strings.Contains(logs.String(), "NATS reconnected")
	})
	if err := broker.Connected(r.nc)(context.Background()); err != nil {
		t.Errorf("Connected check after reconnect = %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "NATS connection attempt failed") {
		t.Error("the failed attempts before the server started were not logged")
	}

	// A stop on purpose is not a warning.
	before := strings.Count(logs.String(), "NATS disconnected")
	broker.Close(r.nc, 5*time.Second)
	if !r.nc.IsClosed() {
		t.Error("Close left the connection open")
	}
	if n := strings.Count(logs.String(), "NATS disconnected"); n != before {
		t.Errorf("a clean Close logged %d more 'NATS disconnected' lines", n-before)
	}
}

func TestRetryRidesOutTransientErrorsOnly(t *testing.T) {
	calls := 0
	err := broker.Retry(context.Background(), zerolog.Nop(), "step", func(context.Context) error {
		calls++
		if calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Retry = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = broker.Retry(context.Background(), zerolog.Nop(), "step", func(context.Context) error {
		calls++
		return jetstream.ErrStreamNameAlreadyInUse
	})
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want the permanent error after 1", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = broker.Retry(ctx, zerolog.Nop(), "step", func(context.Context) error { return nats.ErrTimeout })
	if !errors.Is(err, nats.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Retry past its context = %v, want the last error and the context's", err)
	}
}

func TestRedactURL(t *testing.T) {
	got := broker.RedactURL("nats://user:pw@a:4222, tls://b:4222,nats://token@c")
	if want := "nats://redacted@a:4222,tls://b:4222,nats://redacted@c"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}

func TestEnsureStream(t *testing.T) {
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	opts := broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: 720 * time.Hour, Replicas: 1, Duplicates: 2 * time.Hour}

	if err := broker.StreamExists(js, "UPVEST")(ctx); err == nil {
		t.Errorf("StreamExists before EnsureStream = nil, want an error")
	}
	s, err := broker.EnsureStream(ctx, js, opts)
	if err != nil {
		t.Fatalf("EnsureStream (create): %v", err)
	}
	cfg := s.CachedInfo().Config
	if got, want := cfg.Subjects, []string{"upvest.>"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("Subjects = %v, want %v", got, want)
	}
	if cfg.Storage != jetstream.FileStorage || cfg.MaxAge != opts.MaxAge || cfg.Replicas != 1 || cfg.Duplicates != opts.Duplicates {
		t.Errorf("config = storage %v max age %s replicas %d duplicates %s; want file, %s, 1, %s",
			cfg.Storage, cfg.MaxAge, cfg.Replicas, cfg.Duplicates, opts.MaxAge, opts.Duplicates)
	}
	if !cfg.AllowBatchPublish || !broker.BatchPublishing(s) {
		t.Errorf("allow_batched = %v, BatchPublishing = %v; want both true on nats-server %s", cfg.AllowBatchPublish, broker.BatchPublishing(s), s.CachedInfo().Config.Metadata["_nats.ver"])
	}
	if err := broker.StreamExists(js, "UPVEST")(ctx); err != nil {
		t.Errorf("StreamExists after EnsureStream = %v, want nil", err)
	}

	// Same options again: no error, nothing changes.
	if _, err := broker.EnsureStream(ctx, js, opts); err != nil {
		t.Fatalf("EnsureStream (unchanged): %v", err)
	}

	// Changed options are applied to the existing stream.
	changed := opts
	changed.MaxAge, changed.Duplicates = 24*time.Hour, 10*time.Minute
	if _, err := broker.EnsureStream(ctx, js, changed); err != nil {
		t.Fatalf("EnsureStream (update): %v", err)
	}
	s, err = js.Stream(ctx, "UPVEST")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != changed.MaxAge || got.Duplicates != changed.Duplicates {
		t.Errorf("after update max age %s duplicates %s, want %s %s", got.MaxAge, got.Duplicates, changed.MaxAge, changed.Duplicates)
	}

	// A stream made without allow_batched (as by hand, or by a server that
	// predates it) reports no batch publishing.
	plain, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if broker.BatchPublishing(plain) {
		t.Errorf("BatchPublishing(stream without allow_batched) = true, want false")
	}

	// A stream the server refuses (3 replicas on one server) is a server
	// error, not an options error.
	three := opts
	three.Name, three.Prefix, three.Replicas = "THREE", "three", 3
	_, err = broker.EnsureStream(ctx, js, three)
	if err == nil || errors.Is(err, broker.ErrInvalidStream) {
		t.Errorf("EnsureStream(3 replicas on 1 server) error = %v, want a server error", err)
	}
}

func TestEnsureStreamRejectsNonsense(t *testing.T) {
	_, _, js := brokertest.New(t)
	good := broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute}
	tests := []struct {
		name string
		edit func(*broker.StreamOptions)
	}{
		{"empty name", func(o *broker.StreamOptions) { o.Name = "" }},
		{"name with dot", func(o *broker.StreamOptions) { o.Name = "UP.VEST" }},
		{"name with space", func(o *broker.StreamOptions) { o.Name = "UP VEST" }},
		{"name with wildcard", func(o *broker.StreamOptions) { o.Name = "UP*" }},
		{"empty prefix", func(o *broker.StreamOptions) { o.Prefix = "" }},
		{"wildcard prefix", func(o *broker.StreamOptions) { o.Prefix = "upvest.*" }},
		{"prefix with empty token", func(o *broker.StreamOptions) { o.Prefix = "upvest..x" }},
		{"zero max age", func(o *broker.StreamOptions) { o.MaxAge = 0 }},
		{"negative max age", func(o *broker.StreamOptions) { o.MaxAge = -time.Hour }},
		{"zero replicas", func(o *broker.StreamOptions) { o.Replicas = 0 }},
		{"six replicas", func(o *broker.StreamOptions) { o.Replicas = 6 }},
		{"zero duplicate window", func(o *broker.StreamOptions) { o.Duplicates = 0 }},
		{"duplicates longer than max age", func(o *broker.StreamOptions) { o.Duplicates = 2 * time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := broker.EnsureStream(context.Background(), js, o)
			if !errors.Is(err, broker.ErrInvalidStream) {
				t.Errorf("EnsureStream(%+v) error = %v, want ErrInvalidStream", o, err)
			}
		})
	}
	lister := js.StreamNames(context.Background())
	var got []string
	for name := range lister.Name() {
		got = append(got, name)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("streams after rejected options = %v, want none", got)
	}
}

func TestDownKeepsStreamAcrossRestart(t *testing.T) {
	srv, nc, js := brokertest.New(t)
	ctx := context.Background()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: "S", Prefix: "p", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "p.x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	oldURL := srv.ClientURL()
	up := brokertest.Down(t, srv)
	testkit.Eventually(t, 5*time.Second, "connection notices the outage", func() bool { return !nc.IsConnected() })
	srv = up()
	if got := srv.ClientURL(); got != oldURL {
		t.Errorf("restarted ClientURL() = %q, want %q", got, oldURL)
	}
	testkit.Eventually(t, 5*time.Second, "connection is back", nc.IsConnected)
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	if got := s.CachedInfo().State.Msgs; got != 1 {
		t.Errorf("messages after restart = %d, want 1", got)
	}
}

func TestStreamExistsRidesOutAShortOutageButNotADeletion(t *testing.T) {
	srv, _, js := brokertest.New(t)
	ctx := context.Background()
	opts := broker.StreamOptions{Name: "UPVEST", Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute}
	if _, err := broker.EnsureStream(ctx, js, opts); err != nil {
		t.Fatal(err)
	}
	check := broker.StreamExists(js, "UPVEST")
	if err := check(ctx); err != nil {
		t.Fatalf("check with the stream present: %v", err)
	}

	// The server does not answer (a leader change, a restart): the stream
	// was seen moments ago, so the check keeps passing within StreamGrace.
	up := brokertest.Down(t, srv)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := check(cctx)
	cancel()
	if err != nil {
		t.Errorf("check while the server is briefly away: %v, want nil within the grace", err)
	}
	up()

	// A deleted stream fails the check at once, and keeps failing.
	testkit.Eventually(t, 5*time.Second, "stream reachable again", func() bool { return check(ctx) == nil })
	if err := js.DeleteStream(ctx, "UPVEST"); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("check after deletion: %v, want ErrStreamNotFound", err)
	}
	// A check that never saw the stream has no grace.
	fresh := broker.StreamExists(js, "OTHER")
	if err := fresh(ctx); err == nil {
		t.Errorf("check of a stream never seen = nil, want an error")
	}
}

func TestStartEmbeddedSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         []broker.EmbeddedOption
		wantAlways   bool
		wantInterval time.Duration
	}{
		{"always", []broker.EmbeddedOption{broker.WithSync(0)}, true, 0},
		{"interval", []broker.EmbeddedOption{broker.WithSync(5 * time.Second)}, false, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := broker.StartEmbedded(t.TempDir(), zerolog.Nop(), append(tt.opts, broker.WithPort(-1))...)
			if err != nil {
				t.Fatalf("StartEmbedded: %v", err)
			}
			defer e.Shutdown()
			js := e.Server().JetStreamConfig()
			if js == nil {
				t.Fatal("JetStream is not enabled")
			}
			if js.SyncAlways != tt.wantAlways || (tt.wantInterval != 0 && js.SyncInterval != tt.wantInterval) {
				t.Errorf("sync always %v interval %s, want %v %s", js.SyncAlways, js.SyncInterval, tt.wantAlways, tt.wantInterval)
			}
		})
	}
}
