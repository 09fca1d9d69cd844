package deadletter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/subjects"
)

// Errors of the package, for errors.Is.
var (
	// ErrInvalid is returned by New for options that cannot work.
	ErrInvalid = errors.New("deadletter: invalid option")
	// ErrNotFound means the stream holds no message at a sequence.
	ErrNotFound = errors.New("deadletter: no message at this sequence")
	// ErrNotDeadLetter means the message at a sequence is not a dead
	// letter (it is on another subject).
	ErrNotDeadLetter = errors.New("deadletter: not a dead letter")
	// ErrOutsideWindow means a dead letter selected by its sequence lies
	// outside the selection's time window.
	ErrOutsideWindow = errors.New("deadletter: outside the time window")
)

// JetStream is the part of jetstream.JetStream a Store uses.
type JetStream interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Store reads and redrives the dead letters of one relay stream.
type Store struct {
	js         JetStream
	stream     string
	prefix     string
	sourceBase string
}

// Option tunes New.
type Option func(*Store)

// WithSourceBase sets the Upvest base URL of redriven events' CloudEvent
// source, <base>/webhooks/<webhook_id>, for dead letters that do not carry
// the base they arrived with in their own ce-source (default
// relay.DefaultSourceBase, as the relay's).
func WithSourceBase(base string) Option { return func(s *Store) { s.sourceBase = base } }

// New returns the Store of the dead letters on <prefix>._deadletter in
// stream.
func New(js JetStream, stream, prefix string, opts ...Option) (*Store, error) {
	s := &Store{js: js, stream: stream, prefix: prefix, sourceBase: relay.DefaultSourceBase}
	for _, o := range opts {
		o(s)
	}
	switch {
	case js == nil:
		return nil, fmt.Errorf("%w: no JetStream", ErrInvalid)
	case stream == "":
		return nil, fmt.Errorf("%w: empty stream name", ErrInvalid)
	case !subjects.ValidPrefix(prefix):
		return nil, fmt.Errorf("%w: subject prefix %q", ErrInvalid, prefix)
	}
	return s, nil
}

// Subject is the subject the Store's dead letters are on.
func (s *Store) Subject() string { return subjects.DeadLetter(s.prefix) }

// Letter is one dead letter as stored.
type Letter struct {
	Seq     uint64    // stream sequence
	Time    time.Time // storage time
	Subject string
	// ID is its CloudEvent id and Nats-Msg-Id: dl-<sha256 of the package
	// body>, with -<index> for an element.
	ID     string
	Reason string // Relay-Deadletter-Reason, e.g. relay.DeadLetterNoPayload
	// Index is the element's position in its package's payload, or -1
	// when the dead letter is a whole body.
	Index     int
	RequestID string // Relay-Request-Id: the request it arrived with
	Size      int    // bytes of data
	Header    nats.Header
	// Data is the raw bytes as received; nil in what List returns.
	Data []byte
}

// List calls fn with each dead letter stored between since and until (zero:
// unbounded), in stream order, headers only (Data is nil, Size is set). It
// stops at fn's first error and returns it.
func (s *Store) List(ctx context.Context, since, until time.Time, fn func(Letter) error) error {
	w := broker.Window{Subjects: []string{s.Subject()}, Since: since, Until: until, HeadersOnly: true}
	return broker.Walk(ctx, s.js, s.stream, w, func(m jetstream.Msg) error {
		l, err := letterOf(m)
		if err != nil {
			return err
		}
		return fn(l)
	})
}

// Get returns the dead letter at stream sequence seq, data included. A
// missing message gives ErrNotFound; a message on another subject gives
// ErrNotDeadLetter.
func (s *Store) Get(ctx context.Context, seq uint64) (Letter, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return Letter{}, fmt.Errorf("deadletter: stream %s: %w", s.stream, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("deadletter: get %d: %w", seq, err)
	}
	if m.Subject != s.Subject() {
		return Letter{}, fmt.Errorf("%w: %d is on %s", ErrNotDeadLetter, seq, m.Subject)
	}
	l := letter(m.Sequence, m.Time, m.Subject, m.Header, len(m.Data))
	l.Data = m.Data
	return l, nil
}

// letterOf reads a dead letter from a walked message: with its data, or,
// from a headers-only walk, with its size from Nats-Msg-Size.
func letterOf(m jetstream.Msg) (Letter, error) {
	md, err := m.Metadata()
	if err != nil {
		return Letter{}, fmt.Errorf("deadletter: %w", err)
	}
	h := m.Headers()
	size := len(m.Data())
	if v := h.Get(nats.MsgSize); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			size = n
		}
		h = maps.Clone(h)
		delete(h, nats.MsgSize)
	}
	l := letter(md.Sequence.Stream, md.Timestamp, m.Subject(), h, size)
	if len(m.Data()) > 0 {
		l.Data = m.Data()
	}
	return l, nil
}

func letter(seq uint64, ts time.Time, subject string, h nats.Header, size int) Letter {
	l := Letter{
		Seq:       seq,
		Time:      ts,
		Subject:   subject,
		ID:        h.Get(relay.HeaderID),
		Reason:    h.Get(relay.HeaderDeadLetterReason),
		Index:     -1,
		RequestID: h.Get(relay.HeaderRequestID),
		Size:      size,
		Header:    h,
	}
	if v := h.Get(relay.HeaderDeadLetterIndex); v != "" {
		if i, err := strconv.Atoi(v); err == nil && i >= 0 {
			l.Index = i
		}
	}
	return l
}

// sourceBase is the Upvest base URL the dead letter arrived with, read
// from its ce-source (<base>/webhooks), else fallback.
func sourceBase(h nats.Header, fallback string) string {
	src := h.Get(relay.HeaderSource)
	base, ok := strings.CutSuffix(src, "/webhooks")
	if !ok || base == "" {
		return fallback
	}
	if dec, err := url.PathUnescape(base); err == nil {
		return dec
	}
	return fallback
}
