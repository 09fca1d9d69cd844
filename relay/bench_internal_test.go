package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
)

// natsServerEnv makes the test binary serve JetStream instead of running
// tests: the publishing benchmarks talk to a server in another process, so
// that the allocations they count are the relay's alone.
const natsServerEnv = "RELAY_TEST_SERVE_NATS_IN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(natsServerEnv); dir != "" {
		os.Exit(serveNATS(dir))
	}
	os.Exit(m.Run())
}

// serveNATS runs an embedded JetStream server storing under dir, prints
// its URL and serves until stdin closes.
func serveNATS(dir string) int {
	e, err := broker.StartEmbedded(dir, zerolog.Nop(), broker.WithPort(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Shutdown()
	fmt.Println(e.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// externalJetStream starts a JetStream server in a child process and
// returns a handler publishing to a fresh stream on it.
func externalJetStream(b *testing.B, opts ...Option) *Handler {
	h, _ := externalJetStreamProcess(b, opts...)
	return h
}

// externalJetStreamProcess is externalJetStream, also returning the
// server's process id.
func externalJetStreamProcess(b *testing.B, opts ...Option) (*Handler, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), natsServerEnv+"="+b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("NATS server process: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, strings.TrimSpace(url), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := broker.NewJetStream(nc, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{
		Name: "UPVEST", Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour,
	}); err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler("/webhooks/upvest", acceptEverything{}, js, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return h, pid
}

type acceptEverything struct{}

func (acceptEverything) Verify(context.Context, *http.Request, []byte) error { return nil }

// nilPublisher satisfies Publisher for benchmarks that never publish.
type nilPublisher struct{ jetstream.JetStream }

// perEvent counts the allocations of the timed parts of a benchmark.
type perEvent struct {
	ms      runtime.MemStats
	before  uint64
	mallocs uint64
}

func (p *perEvent) start() { runtime.ReadMemStats(&p.ms); p.before = p.ms.Mallocs }
func (p *perEvent) stop()  { runtime.ReadMemStats(&p.ms); p.mallocs += p.ms.Mallocs - p.before }
func (p *perEvent) report(b *testing.B, events int) {
	b.ReportMetric(float64(p.mallocs)/float64(b.N*events), "allocs/event")
}

// BenchmarkParse is the one pass over a package: validation, split and
// the fields of every event, their strings included.
func BenchmarkParse(b *testing.B) {
	for _, n := range []int{20, 1000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			body := BenchPackage(n, 0)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parsePackage(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
	// For scale: encoding/json's validation alone, which the one pass
	// replaces along with the split and the field extraction.
	b.Run("json.Valid/events=1000", func(b *testing.B) {
		body := BenchPackage(1000, 0)
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkMessages is parse plus every message's headers, as publish
// builds them.
func BenchmarkMessages(b *testing.B) {
	h, err := NewHandler("/webhooks/upvest", acceptEverything{}, nilPublisher{})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{20, 1000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			body := BenchPackage(n, 0)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var pe perEvent
			pe.start()
			for b.Loop() {
				p, _ := h.messages(body, "req")
				for i := range p.len() {
					p.msg(i)
				}
			}
			pe.stop()
			pe.report(b, n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkPublish is the hot path of a verified package: parse, headers,
// and storing every message in order into JetStream (in another process)
// until the commit is acknowledged; one-at-a-time is the path without
// batch publishing (an older server), each message awaiting its PubAck.
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name    string
		n       int
		batched bool
	}{{"events=20", 20, true}, {"events=1000", 1000, true}, {"events=1000/one-at-a-time", 1000, false}} {
		n := c.n
		b.Run(c.name, func(b *testing.B) {
			h := externalJetStream(b, WithBatchPublishing(c.batched))
			run := 0
			var pe perEvent
			for b.Loop() {
				b.StopTimer()
				run++
				body := BenchPackage(n, run)
				pe.start()
				b.StartTimer()
				p, out := h.messages(body, "req")
				if err := h.publish(context.Background(), p, &out); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				pe.stop()
				b.StartTimer()
				if out.Published != n {
					b.Fatalf("published %d of %d", out.Published, n)
				}
			}
			pe.report(b, n)
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPublishGrouped is BenchmarkPublish for 16 packages of 20
// events that wait together while a batch is in flight, as with many
// webhooks at once, and so share the next batch: one operation is the 16
// packages, parsed, built and stored.
func BenchmarkPublishGrouped(b *testing.B) {
	const packages, n = 16, 20
	h := externalJetStream(b)
	run := 0
	var pe perEvent
	for b.Loop() {
		b.StopTimer()
		bodies := benchPackages(packages, n, &run)
		pe.start()
		b.StartTimer()
		publishGrouped(b, h, bodies, n)
		b.StopTimer()
		pe.stop()
		b.StartTimer()
	}
	pe.report(b, packages*n)
	b.ReportMetric(float64(b.N*packages*n)/b.Elapsed().Seconds(), "events/s")
}

// benchPackages is packages packages of n events, with ids from run on.
func benchPackages(packages, n int, run *int) [][]byte {
	bodies := make([][]byte, packages)
	for i := range bodies {
		*run++
		bodies[i] = BenchPackage(n, *run)
	}
	return bodies
}

// publishGrouped parses and stores the packages of n events in bodies,
// which wait together while a batch is in flight and so share the next
// batch, and fails b unless each is stored whole.
func publishGrouped(b *testing.B, h *Handler, bodies [][]byte, n int) {
	h.group.hold()
	var wg sync.WaitGroup
	outs := make([]outcome, len(bodies))
	for i, body := range bodies {
		wg.Go(func() {
			var p *publication
			p, outs[i] = h.messages(body, "req")
			if err := h.publish(context.Background(), p, &outs[i]); err != nil {
				b.Error(err)
			}
		})
	}
	for h.group.queued() < len(bodies) {
		runtime.Gosched()
	}
	h.group.handOn()
	wg.Wait()
	for _, out := range outs {
		if out.Published != n {
			b.Fatalf("published %d of %d", out.Published, n)
		}
	}
}
