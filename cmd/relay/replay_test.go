package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/config/configtest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// replayFixture is a relay on an embedded JetStream holding a few known
// events, posted as Upvest would.
type replayFixture struct {
	env    []string
	a      *service.Service
	stop   func() error
	events map[string]json.RawMessage // ce-id -> data
	orders int                        // how many are ORDER.*
	after  time.Time                  // a moment after every event was stored
}

func newReplayFixture(t *testing.T) *replayFixture {
	t.Helper()
	emu, keys := emulatorWithKeysFile(t)
	env := []string{
		"RELAY_VERIFY_KEYS_FILE=" + keys,
		"RELAY_DATA_DIR=" + t.TempDir(),
		"RELAY_LISTEN_ADDR=127.0.0.1:0",
		"RELAY_ADMIN_ADDR=127.0.0.1:0",
		"RELAY_LOG_LEVEL=warn",
	}
	a, stop := startApp(t, testConfig(t, env...))

	f := &replayFixture{env: env, a: a, stop: stop, events: map[string]json.RawMessage{}}
	gen := emulator.NewGenerator(3)
	events := append(gen.Batch(6), gen.OrderFlow()...)
	body := packageBody(t, events, "4b1d0c1e-0000-4000-8000-000000000002")
	if got := post(t, emu, body, a); got != http.StatusOK {
		t.Fatalf("post: %d, want 200", got)
	}
	var pkg struct{ Payload []json.RawMessage }
	if err := json.Unmarshal(body, &pkg); err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		f.events[e.ID] = pkg.Payload[i]
		if strings.HasPrefix(e.Type, "ORDER.") {
			f.orders++
		}
	}
	time.Sleep(10 * time.Millisecond) // storage times have a resolution; step past them
	f.after = time.Now()
	return f
}

// replayLines runs `relay replay args...` and returns its stdout lines.
func (f *replayFixture) replayLines(t *testing.T, args ...string) []string {
	t.Helper()
	lines, _ := f.replay(t, args...)
	return lines
}

// replay runs `relay replay args...` and returns its stdout lines and its
// stderr.
func (f *replayFixture) replay(t *testing.T, args ...string) (lines []string, stderr string) {
	t.Helper()
	var stdout, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"replay"}, args...), configtest.Env(f.env...), &stdout, &errb); code != 0 {
		t.Fatalf("relay replay %v: exit %d: %s", args, code, errb.String())
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, errb.String()
}

func TestReplayPrintsStructuredCloudEvents(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	lines := f.replayLines(t)
	if len(lines) != len(f.events) {
		t.Fatalf("replay printed %d lines, want %d", len(lines), len(f.events))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var ev struct {
			SpecVersion string          `json:"specversion"`
			ID          string          `json:"id"`
			Type        string          `json:"type"`
			Source      string          `json:"source"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line is not JSON: %v: %s", err, l)
		}
		want, ok := f.events[ev.ID]
		if !ok || ev.SpecVersion != "1.0" || !strings.HasPrefix(ev.Type, "co.upvest.") || ev.Source == "" {
			t.Errorf("unexpected event: %s", l)
			continue
		}
		if !jsonEqual(t, ev.Data, want) {
			t.Errorf("event %s data = %s, want %s", ev.ID, ev.Data, want)
		}
		seen[ev.ID] = true
	}
	if len(seen) != len(f.events) {
		t.Errorf("replay printed %d distinct events, want %d", len(seen), len(f.events))
	}
}

func TestReplayWindowsAndFilters(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	later := f.after.Format(time.RFC3339Nano)
	long := "2000-01-01T00:00:00Z"
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"everything", nil, len(f.events)},
		{"since a duration", []string{"--since", "1h"}, len(f.events)},
		{"since a time", []string{"--since", long}, len(f.events)},
		{"subject filter", []string{"--subject", "upvest.order.>"}, f.orders},
		{"empty window after the events", []string{"--since", later}, 0},
		{"until before the events", []string{"--since", long, "--until", "2001-01-01T00:00:00Z"}, 0},
		{"until after the events", []string{"--until", later}, len(f.events)},
		{"subject without events", []string{"--subject", "upvest.nothing.here"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(f.replayLines(t, tt.args...)); got != tt.want {
				t.Errorf("replay %v printed %d events, want %d", tt.args, got, tt.want)
			}
		})
	}
	// Replay leaves no consumer behind and never changes the stream. It
	// deletes its ordered consumer when done; one the ordered consumer
	// recreated meanwhile (a reset) goes within its 10 s inactive threshold.
	s, err := f.a.JetStream().Stream(context.Background(), "UPVEST")
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	testkit.Eventually(t, 15*time.Second, "no consumer left after the replays", func() bool {
		info, err = s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers == 0
	})
	if info.State.Msgs != uint64(len(f.events)) {
		t.Errorf("after replays: %d messages; want %d", info.State.Msgs, len(f.events))
	}
}

func TestReplayRepublishes(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	sub, err := f.a.Conn().SubscribeSync("copy.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if lines := f.replayLines(t, "--republish", "copy"); len(lines) != 0 {
		t.Errorf("--republish printed %d lines on stdout, want none", len(lines))
	}
	for range len(f.events) {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("republished message: %v", err)
		}
		id := m.Header.Get("ce-id")
		if !strings.HasPrefix(m.Subject, "copy.upvest.") || m.Header.Get(nats.MsgIdHdr) != id {
			t.Errorf("republished %s with headers %v", m.Subject, m.Header)
		}
		if !bytes.Equal(m.Data, f.events[id]) {
			t.Errorf("republished data of %s = %s, want the original bytes", id, m.Data)
		}
	}
	if info, _ := f.a.JetStream().Stream(context.Background(), "UPVEST"); info != nil {
		if st, _ := info.Info(context.Background()); st.State.Msgs != uint64(len(f.events)) {
			t.Errorf("source stream holds %d messages after republish, want %d", st.State.Msgs, len(f.events))
		}
	}
}

// TestReplayWithTheRelayStopped reads the data dir with an embedded server
// started just for the replay, quietly.
func TestReplayWithTheRelayStopped(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	lines, stderr := f.replay(t, "--since", "1h")
	if got := len(lines); got != len(f.events) {
		t.Errorf("replay of a stopped relay's data printed %d events, want %d", got, len(f.events))
	}
	if strings.Contains(stderr, "nats-server") || strings.Contains(stderr, `"warn"`) {
		t.Errorf("stderr holds the embedded server's own lines or warnings:\n%s", stderr)
	}
}

// TestReplayWithoutARelay fails in one line that names the variables to
// set.
func TestReplayWithoutARelay(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"replay", "--since", "2026-12-01"}, []string{"RELAY_DATA_DIR=" + t.TempDir()}, &stdout, &stderr)
	got := stderr.String()
	if code != 1 || strings.Count(got, "\n") != 1 || !strings.Contains(got, "RELAY_DATA_DIR") || !strings.Contains(got, "RELAY_NATS_URL") {
		t.Errorf("exit %d, stderr %q; want 1 and one line naming RELAY_DATA_DIR and RELAY_NATS_URL", code, got)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00.5+02:00", time.Date(2026, 12, 1, 8, 0, 0, 5e8, time.UTC)},
		{"2026-12-01", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:30", time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)},
		{"2026-12-01 10:00", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2h", now.Add(-2 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "-2h", "2026-13-01", "2026-12-01T25:00", "01.12.2026"} {
		if got, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) = %s, want an error", bad, got)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
