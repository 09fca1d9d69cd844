package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// ErrInvalidStream is returned by EnsureStream for options that cannot
// describe a stream; errors.Is tells it from a server-side failure.
var ErrInvalidStream = errors.New("broker: invalid stream options")

// StreamOptions describe the relay's stream.
type StreamOptions struct {
	// Name of the stream, e.g. "UPVEST".
	Name string
	// Prefix is the first subject token(s); the stream captures
	// <Prefix>.>.
	Prefix string
	// MaxAge is how long messages are kept (retention for replay).
	MaxAge time.Duration
	// Replicas is the number of stream replicas, 1 to 5.
	Replicas int
	// Duplicates is the deduplication window on Nats-Msg-Id; at most
	// MaxAge.
	Duplicates time.Duration
}

// StreamManager is the part of jetstream.JetStream EnsureStream and
// StreamExists use.
type StreamManager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// EnsureStream creates the stream described by o, or updates an existing
// one of that name to match it, and returns it. The stream allows
// fast-ingest batch publishing (allow_batched), how the relay stores a
// package's events in order; see BatchPublishing for servers that predate
// it.
func EnsureStream(ctx context.Context, js StreamManager, o StreamOptions) (jetstream.Stream, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	s, err := js.CreateOrUpdateStream(ctx, o.config())
	if err != nil {
		return nil, fmt.Errorf("broker: ensure stream %s: %w", o.Name, err)
	}
	return s, nil
}

func (o StreamOptions) config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       o.Name,
		Subjects:   []string{subjects.Stream(o.Prefix)},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     o.MaxAge,
		Replicas:   o.Replicas,
		Duplicates: o.Duplicates,
		// Fast-ingest batches (nats-server 2.14+) store a publisher's
		// messages in the order it sent them and stop at the first gap.
		AllowBatchPublish: true,
	}
}

// BatchPublishing reports whether the server accepted allow_batched for
// s, the stream EnsureStream returned. A server older than 2.14 drops the
// field it does not know, so the configuration it answers with lacks it;
// the relay then stores each package one message at a time, awaiting each
// PubAck, which keeps package order at a fraction of the speed.
func BatchPublishing(s jetstream.Stream) bool {
	return s.CachedInfo().Config.AllowBatchPublish
}

func (o StreamOptions) validate() error {
	if err := ValidStreamName(o.Name); err != nil {
		return fmt.Errorf("%w: name %q %w", ErrInvalidStream, o.Name, err)
	}
	switch {
	case !subjects.ValidPrefix(o.Prefix):
		return fmt.Errorf("%w: subject prefix %q", ErrInvalidStream, o.Prefix)
	case o.MaxAge <= 0:
		return fmt.Errorf("%w: max age %s must be positive", ErrInvalidStream, o.MaxAge)
	}
	if err := ValidReplicas(o.Replicas); err != nil {
		return fmt.Errorf("%w: replicas %w", ErrInvalidStream, err)
	}
	if err := ValidDuplicateWindow(o.Duplicates, o.MaxAge); err != nil {
		return fmt.Errorf("%w: duplicate window %w", ErrInvalidStream, err)
	}
	return nil
}

// maxStreamName is nats-server's JSMaxNameLen.
const maxStreamName = 255

// The stream replica counts JetStream allows.
const (
	MinReplicas = 1
	MaxReplicas = 5
)

// ValidStreamName reports whether s can name a JetStream stream: 1 to 255
// printable ASCII characters without spaces, '.', '*', '>', '/' or '\'.
func ValidStreamName(s string) error {
	ok := s != "" && len(s) <= maxStreamName
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = '!' <= c && c <= '~' && !strings.ContainsRune(`.*>/\`, rune(c))
	}
	if !ok {
		return fmt.Errorf(`must be 1 to %d printable ASCII characters without spaces, '.', '*', '>', '/' or '\'`, maxStreamName)
	}
	return nil
}

// ValidReplicas reports whether n is a stream replica count, 1 to 5.
func ValidReplicas(n int) error {
	if n < MinReplicas || n > MaxReplicas {
		return fmt.Errorf("must be between %d and %d, got %d", MinReplicas, MaxReplicas, n)
	}
	return nil
}

// ValidDuplicateWindow reports whether window can be the deduplication
// window of a stream that keeps messages for maxAge: positive and at most
// maxAge.
func ValidDuplicateWindow(window, maxAge time.Duration) error {
	switch {
	case window <= 0:
		return fmt.Errorf("must be positive, got %s", window)
	case window > maxAge:
		return fmt.Errorf("must not exceed the max age %s, got %s", maxAge, window)
	}
	return nil
}

// StreamExists returns a readiness check that passes while the stream
// name exists on the server. A server that answers "stream not found" fails
// it at once; one that does not answer in time (a clustered stream electing
// a new leader takes a few seconds) fails it only when the stream has not
// been seen for StreamGrace, so that every replica is not taken out of
// service together during a routine leader change.
func StreamExists(js StreamManager, name string) func(context.Context) error {
	var (
		mu       sync.Mutex
		lastSeen time.Time
	)
	return func(ctx context.Context) error {
		_, err := js.Stream(ctx, name)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			lastSeen = time.Now()
			return nil
		case errors.Is(err, jetstream.ErrStreamNotFound):
			lastSeen = time.Time{}
		case !lastSeen.IsZero() && time.Since(lastSeen) < StreamGrace:
			return nil
		}
		return fmt.Errorf("broker: stream %s: %w", name, err)
	}
}

// StreamGrace is how long StreamExists keeps passing while the server does
// not answer, after it last saw the stream.
const StreamGrace = 15 * time.Second

// AsyncMaxPending is the async publish window of NewJetStream: what the
// relay admits at once (32 packages in flight, up to 1000 events in a 1 MiB
// package), twice over. nats.go's default (4000) is below that, so 32
// concurrent 1000-event packages would stall with "too many outstanding
// async published messages" and be answered 503.
const AsyncMaxPending = 2 * 32 * 1000

// NewJetStream returns a JetStream context on nc whose asynchronous
// publishes fail with jetstream.ErrAsyncPublishTimeout after ackTimeout,
// so a PubAck that never comes (the server went away mid-publish) frees
// its pending slot instead of pinning it forever. Use a value at least as
// long as the relay's own ack wait.
func NewJetStream(nc *nats.Conn, ackTimeout time.Duration) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncMaxPending(AsyncMaxPending))
	if err != nil {
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	return js, nil
}
