package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// walkStream is a stream "S" on p.> holding six messages alternating
// between p.a and p.b, and the storage time of each (by sequence, from 1).
func walkStream(t *testing.T) (jetstream.JetStream, []time.Time) {
	t.Helper()
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	s, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: "S", Prefix: "p", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	times := []time.Time{{}}
	for i := 1; i <= 6; i++ {
		subj := "p.a"
		if i%2 == 0 {
			subj = "p.b"
		}
		ack, err := js.Publish(ctx, subj, fmt.Appendf(nil, "m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, m.Time)
	}
	return js, times
}

// walked returns the data of every message Walk passes to its function.
func walked(t *testing.T, js jetstream.JetStream, w broker.Window) []string {
	t.Helper()
	var got []string
	err := broker.Walk(context.Background(), js, "S", w, func(m jetstream.Msg) error {
		got = append(got, string(m.Data()))
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%+v): %v", w, err)
	}
	return got
}

func TestWalkWindows(t *testing.T) {
	js, times := walkStream(t)
	// want lists the messages (by sequence) whose storage time is within
	// [since, until], zero meaning unbounded: computed from the stored
	// times, so equal timestamps cannot make the test wrong.
	want := func(subject string, since, until time.Time) []string {
		var w []string
		for seq := 1; seq <= 6; seq++ {
			if subject == "p.a" && seq%2 == 0 || subject == "p.b" && seq%2 == 1 {
				continue
			}
			if ts := times[seq]; (since.IsZero() || !ts.Before(since)) && (until.IsZero() || !ts.After(until)) {
				w = append(w, fmt.Sprintf("m%d", seq))
			}
		}
		return w
	}
	tests := []struct {
		name    string
		w       broker.Window
		subject string
	}{
		{"everything", broker.Window{}, ""},
		{"one subject", broker.Window{Subjects: []string{"p.b"}}, "p.b"},
		{"both subjects", broker.Window{Subjects: []string{"p.a", "p.b"}}, ""},
		{"since the third", broker.Window{Since: times[3]}, ""},
		{"until the fourth", broker.Window{Until: times[4]}, ""},
		{"second to fifth, one subject", broker.Window{Subjects: []string{"p.a"}, Since: times[2], Until: times[5]}, "p.a"},
		{"after the last", broker.Window{Since: times[6].Add(time.Second)}, ""},
		{"before the first", broker.Window{Until: times[1].Add(-time.Second)}, ""},
		{"a subject with nothing", broker.Window{Subjects: []string{"p.c"}}, "p.c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := want(tt.subject, tt.w.Since, tt.w.Until)
			if tt.subject == "p.c" {
				w = nil
			}
			if got := walked(t, js, tt.w); !slices.Equal(got, w) {
				t.Errorf("walked %v, want %v", got, w)
			}
		})
	}

	s, err := js.Stream(context.Background(), "S")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, "no consumer left after the walks", func() bool {
		info, err := s.Info(context.Background())
		return err == nil && info.State.Consumers == 0
	})
}

func TestWalkHeadersOnly(t *testing.T) {
	js, _ := walkStream(t)
	n := 0
	err := broker.Walk(context.Background(), js, "S", broker.Window{HeadersOnly: true}, func(m jetstream.Msg) error {
		n++
		if len(m.Data()) != 0 || m.Headers().Get(nats.MsgSize) != "2" {
			t.Errorf("headers-only message: data %q, %s %q; want no data, size 2", m.Data(), nats.MsgSize, m.Headers().Get(nats.MsgSize))
		}
		return nil
	})
	if err != nil || n != 6 {
		t.Errorf("Walk = %v after %d messages, want nil after 6", err, n)
	}
}

func TestWalkStops(t *testing.T) {
	js, _ := walkStream(t)
	ctx := context.Background()

	// The function's error ends the walk and is returned as is.
	stop := errors.New("enough")
	n := 0
	err := broker.Walk(ctx, js, "S", broker.Window{}, func(jetstream.Msg) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("Walk = %v after %d messages, want the function's error after 2", err, n)
	}

	// Messages stored while walking are not read: the walk ends.
	n = 0
	err = broker.Walk(ctx, js, "S", broker.Window{}, func(jetstream.Msg) error {
		n++
		_, err := js.Publish(ctx, "p.a", []byte("later"))
		return err
	})
	if err != nil || n != 6 {
		t.Errorf("Walk while publishing = %v after %d messages, want nil after 6", err, n)
	}

	// A cancelled context ends it with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	err = broker.Walk(cctx, js, "S", broker.Window{}, func(jetstream.Msg) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with a cancelled context = %v, want context.Canceled", err)
	}

	// An empty stream, and a missing one.
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: "EMPTY", Prefix: "e", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := broker.Walk(ctx, js, "EMPTY", broker.Window{}, func(jetstream.Msg) error {
		t.Error("called on an empty stream")
		return nil
	}); err != nil {
		t.Errorf("Walk(empty stream) = %v, want nil", err)
	}
	if err := broker.Walk(ctx, js, "MISSING", broker.Window{}, func(jetstream.Msg) error { return nil }); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Walk(missing stream) = %v, want ErrStreamNotFound", err)
	}
}

func TestEmbeddedURLFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := broker.EmbeddedURL(dir); !errors.Is(err, broker.ErrNoEmbedded) {
		t.Errorf("EmbeddedURL before any server = %v, want ErrNoEmbedded", err)
	}

	var logs testkit.LogBuffer
	e, err := broker.StartEmbedded(dir, zerolog.New(&logs).Level(zerolog.WarnLevel), broker.WithPort(-1), broker.WithURLFile())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	if got, err := broker.EmbeddedURL(dir); err != nil || got != e.ClientURL() {
		t.Errorf("EmbeddedURL while running = %q, %v; want %q", got, err, e.ClientURL())
	}
	if got := logs.String(); got != "" {
		t.Errorf("warnings while starting: %s; want none (the max_payload advice is the relay's choice, not news)", got)
	}
	e.Shutdown()
	if _, err := broker.EmbeddedURL(dir); !errors.Is(err, broker.ErrNoEmbedded) {
		t.Errorf("EmbeddedURL after Shutdown = %v, want ErrNoEmbedded", err)
	}

	// A server that finds another's record at shutdown leaves it alone.
	e2, err := broker.StartEmbedded(dir, zerolog.Nop(), broker.WithPort(-1), broker.WithURLFile())
	if err != nil {
		t.Fatal(err)
	}
	other := "nats://127.0.0.1:1"
	if err := os.WriteFile(filepath.Join(dir, broker.URLFile), []byte(other+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e2.Shutdown()
	if got, err := broker.EmbeddedURL(dir); got != other || err != nil {
		t.Errorf("EmbeddedURL after a shutdown that found another record = %q, %v; want %q", got, err, other)
	}

	// Without the option nothing is recorded.
	dir2 := t.TempDir()
	e3, err := broker.StartEmbedded(dir2, zerolog.Nop(), broker.WithPort(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Shutdown()
	if _, err := broker.EmbeddedURL(dir2); !errors.Is(err, broker.ErrNoEmbedded) {
		t.Errorf("EmbeddedURL of a server started without WithURLFile = %v, want ErrNoEmbedded", err)
	}
	if entries, _ := os.ReadDir(dir2); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), broker.URLFile) }) {
		t.Errorf("data dir holds %v, want no URL file", entries)
	}
}
