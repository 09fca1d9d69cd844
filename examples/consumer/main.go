// Command consumer is an example downstream service of upvest-relay: a
// durable JetStream pull consumer on upvest.order.> that decodes each
// message with the CloudEvents SDK and handles every event once, by its
// CloudEvent id, even when JetStream delivers it again (a redelivery after
// a failed or unacknowledged attempt, or a copy re-published by
// `relay replay --republish`).
//
//	go run ./examples/consumer                       # nats://127.0.0.1:4222, stream UPVEST
//	NATS_URL=nats://nats:4222 go run ./examples/consumer
//
// Start `relay demo` in another terminal to have orders to consume.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	natsjs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Name("upvest-relay example consumer"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	err = Run(ctx, js, Options{}, NewMemoryDeduper(), func(_ context.Context, ev event.Event) error {
		fmt.Printf("%s %s %s\n", ev.Time().Format(time.RFC3339), ev.Type(), ev.ID())
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

// Options name what Run consumes; the zero value is the relay's defaults.
type Options struct {
	Stream  string // default "UPVEST" (RELAY_STREAM)
	Subject string // default "upvest.order.>" (RELAY_SUBJECT_PREFIX "upvest")
	Durable string // default "example-orders"; a durable consumer resumes where it stopped
}

// Handler handles one event. An error makes JetStream deliver the event
// again later. When the relay traces (docs/tracing.md), ctx carries the
// package's trace context from the event's traceparent extension: a span
// the handler starts from ctx continues the trace that began at Upvest's
// request.
type Handler func(ctx context.Context, ev event.Event) error

// Deduper remembers which event ids were handled. In a real service it is
// the database the handler writes to (a unique constraint on the event id,
// written in the same transaction as the effect), so that a crash between
// handling and acknowledging cannot apply an event twice.
type Deduper interface {
	Handled(ctx context.Context, id string) (bool, error)
	MarkHandled(ctx context.Context, id string) error
}

// Run consumes o.Subject from o.Stream with a durable pull consumer
// (explicit acks) until ctx ends, then returns nil. Each message is decoded
// as a binary-mode CloudEvent; an event whose id d has seen is acknowledged
// without calling h; otherwise h runs, and on success the id is recorded
// and the message acknowledged, on failure it is negatively acknowledged
// for redelivery. A message that is not a CloudEvent is terminated.
func Run(ctx context.Context, js jetstream.JetStream, o Options, d Deduper, h Handler) error {
	if o.Stream == "" {
		o.Stream = "UPVEST"
	}
	if o.Subject == "" {
		o.Subject = "upvest.order.>"
	}
	if o.Durable == "" {
		o.Durable = "example-orders"
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, o.Stream, jetstream.ConsumerConfig{
		Durable:       o.Durable,
		FilterSubject: o.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", o.Durable, o.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		handle(ctx, m, d, h)
	}
}

func handle(ctx context.Context, m jetstream.Msg, d Deduper, h Handler) {
	msg := natsjs.NewMessage(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	ev, err := binding.ToEvent(ctx, msg)
	if err != nil {
		_ = m.Term() // not a CloudEvent: redelivering it cannot help
		return
	}
	done, err := d.Handled(ctx, ev.ID())
	switch {
	case err != nil:
		_ = m.NakWithDelay(time.Second)
	case done:
		_ = m.Ack()
	case h(propagation.TraceContext{}.Extract(ctx, traceExtensions{ev}), *ev) != nil:
		_ = m.NakWithDelay(100 * time.Millisecond)
	case d.MarkHandled(ctx, ev.ID()) != nil:
		_ = m.NakWithDelay(time.Second)
	default:
		_ = m.Ack()
	}
}

// traceExtensions reads an event's distributed-tracing extension
// (traceparent, tracestate) for W3C trace-context propagation.
type traceExtensions struct{ ev *event.Event }

func (t traceExtensions) Get(key string) string {
	v, _ := t.ev.Extensions()[key].(string)
	return v
}

func (t traceExtensions) Set(string, string) {}

func (t traceExtensions) Keys() []string { return []string{"traceparent", "tracestate"} }

// MemoryDeduper is a Deduper in memory, for this example and tests.
type MemoryDeduper struct {
	mu   sync.Mutex
	seen map[string]bool
}

// NewMemoryDeduper returns an empty MemoryDeduper.
func NewMemoryDeduper() *MemoryDeduper { return &MemoryDeduper{seen: map[string]bool{}} }

// Handled reports whether id was marked.
func (m *MemoryDeduper) Handled(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[id], nil
}

// MarkHandled marks id.
func (m *MemoryDeduper) MarkHandled(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[id] = true
	return nil
}
