package relay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/upvest-relay/upvest-relay/subjects"
)

// How a package is stored in order.
//
// A package's messages are sent as one JetStream fast-ingest batch
// (jetstreamext.FastPublisher; stream option allow_batched, nats-server
// 2.14+), or, for a small package that waits while another batch is in
// flight, as part of one shared with other packages (see group.go): the
// stream leader stores them in the order they were sent and,
// with gap mode "fail", stops the batch at the first message it did not
// get, so what a batch stores is always a prefix of what was sent. Its
// commit is acknowledged once everything it stored is durable (applied
// after a quorum on a replicated stream), with the number of messages
// accounted for. Nats-Msg-Id deduplication works inside a batch as
// everywhere: a message whose id is stored, or being stored, is skipped
// and still counts towards that number.
//
// When a batch ends short (a leader change, a lost node, a timeout) the
// messages after the acknowledged ones may or may not have been stored (a
// new leader can still commit what the old one proposed), so the relay
// walks on one message at a time, each awaiting its PubAck, while they
// turn out to be stored already, and sends the rest as a new batch from the
// first one that was not. Every message is therefore sent again only after
// every message before it is known to be stored: no later event is ever
// stored before an earlier one. A retried package (from Upvest) starts
// over; what an earlier attempt stored is deduplicated, and the stored
// events still form a prefix of the package.
//
// Without batch publishing (WithBatchPublishing(false), or a server that
// refuses batches) every message is published that way, one at a time.

// Fast-ingest flow control: the server acknowledges every batchFlow
// messages at most, and the publisher waits once batchOutstanding
// acknowledgements are due. While several batches are in flight the server
// starts each at one message per acknowledgement and doubles that with
// each one (up to 500 ÷ batches), so with jetstreamext's default of 2 a
// package spends most of its time waiting for round trips; 8 measured
// 0.85× instead of 0.72× the floor's events/s with 8 webhooks in parallel
// (docs/performance.md).
const (
	batchFlow        = 500
	batchOutstanding = 8
)

// batchAckWait bounds each wait of a batch for the server (its first
// acknowledgement, flow control, the commit); past it the batch is given
// up and the package continues one message at a time. The whole package
// stays bounded by the ack timeout.
const batchAckWait = 2 * time.Second

// Pauses between attempts to store the rest of a package after a failure.
const (
	retryPauseMin = 20 * time.Millisecond
	retryPauseMax = 500 * time.Millisecond
)

// jsErrDuplicateInProcess is JetStream's "duplicate message id is in
// process" (a clustered stream is still committing the same Nats-Msg-Id).
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

// errShortBatch: a batch was acknowledged with fewer messages than sent.
var errShortBatch = errors.New("batch ended early")

// errNoBatching: the server answered a batch as it would a plain publish
// (it predates fast-ingest batches) or refused batches on the stream.
var errNoBatching = errors.New("batch publishing not available")

// WithBatchPublishing chooses how a package's messages are stored in
// order (default true): as one fast-ingest batch, or, when false, one
// message at a time, each awaiting its PubAck. Use false when the stream
// does not allow batches (broker.BatchPublishing); a handler that meets a
// server refusing batches switches to one at a time by itself, with a
// warning.
func WithBatchPublishing(on bool) Option { return func(h *Handler) { h.batchInit = on } }

// SetBatchPublishing changes what WithBatchPublishing chose, for the
// packages that start from now on: a relay that creates its stream after
// the handler (NATS was not there yet) learns only then whether the server
// allows batches.
func (h *Handler) SetBatchPublishing(on bool) { h.batched.Store(on) }

// publication is a package's messages, in package order, built one at a
// time as they are published.
type publication struct {
	pp        *parsed
	repeats   []bool // per element: its id is an earlier event's; nil if none is
	whole     *nats.Msg
	body      []byte
	requestID string
	pkg       *packageDigest
	b         *msgBuilder
	trace     *packageTrace // nil: untraced
}

// traced makes every message of p carry t's trace context: the event
// messages through their builder's headers, dead letters as they are made.
func (p *publication) traced(t *packageTrace) {
	p.trace = t
	t.addHeaders(p.b.msg.Header)
	if p.whole != nil {
		t.addHeaders(p.whole.Header)
	}
}

// commonSubject is the subject of every message of p, if they share one.
func (p *publication) commonSubject() (string, bool) {
	subject := func(i int) string {
		if p.pp.elems[i].bad != nil {
			return subjects.DeadLetter(p.b.prefix)
		}
		return p.b.types.get(p.pp.str(p.pp.elems[i].f[fType])).subject
	}
	if p.whole != nil {
		return p.whole.Subject, true
	}
	first := subject(0)
	for i := 1; i < len(p.pp.elems); i++ {
		if subject(i) != first {
			return "", false
		}
	}
	return first, true
}

func (p *publication) len() int {
	if p.whole != nil {
		return 1
	}
	return len(p.pp.elems)
}

// msg returns the i-th message and the metric family it counts under (""
// for a dead letter). The message is valid until the next call.
func (p *publication) msg(i int) (*nats.Msg, string) {
	if p.whole != nil {
		return p.whole, ""
	}
	ev, bad := p.pp.event(i)
	if bad != nil {
		if p.pkg == nil {
			sum := packageDigest(sha256.Sum256(p.body))
			p.pkg = &sum
		}
		m := deadLetterMsg(p.b.prefix, p.b.sourceBase, *p.pkg, ev.raw, deadLetterReason(bad), p.requestID, i)
		p.trace.addHeaders(m.Header)
		return m, ""
	}
	m := p.b.event(ev)
	return m, p.b.last.family
}

// repeated reports whether the i-th message carries the id of an earlier
// one of the package, which JetStream stores only once.
func (p *publication) repeated(i int) bool { return p.repeats != nil && p.repeats[i] }

// findRepeats marks the events whose id an earlier event of the package
// has.
func (p *publication) findRepeats() {
	elems := p.pp.elems
	if len(elems) < 2 {
		return
	}
	mark := func(i int) {
		if p.repeats == nil {
			p.repeats = make([]bool, len(elems))
		}
		p.repeats[i] = true
	}
	id := func(i int) string { return p.pp.str(elems[i].f[fID]) }
	if len(elems) <= 32 {
		// Few enough to compare each with those before it, allocating nothing.
		for i := 1; i < len(elems); i++ {
			for j := 0; j < i && elems[i].bad == nil; j++ {
				if elems[j].bad == nil && id(i) == id(j) {
					mark(i)
					break
				}
			}
		}
		return
	}
	seen := make(map[string]struct{}, len(elems))
	for i := range elems {
		if elems[i].bad != nil {
			continue
		}
		if _, ok := seen[id(i)]; ok {
			mark(i)
			continue
		}
		seen[id(i)] = struct{}{}
	}
}

// storeInOrder stores every message of p in package order before ctx
// ends, counting each into out and the metrics as it is acknowledged.
func (h *Handler) storeInOrder(ctx context.Context, p *publication, out *outcome) error {
	n := p.len()
	pos := 0
	// known: none of p's messages from pos on was sent by this request, so
	// none of them is stored unless an earlier request stored it.
	known := true
	pause := retryPauseMin
	var last error
	for pos < n {
		var err error
		if known && n-pos > 1 && h.batched.Load() {
			var k int
			if pos == 0 && n < groupMaxPackage {
				k, err = h.group.store(ctx, p, out)
			} else {
				k, err = h.publishBatch(ctx, p, pos, out)
			}
			pos += k
			if err == nil {
				continue
			}
			known = false
			if errors.Is(err, errNoBatching) {
				if h.batched.CompareAndSwap(true, false) {
					h.log.Warn().Err(err).Msg("JetStream refuses fast-ingest batches on this stream: packages are stored one message at a time from now on (slower); use nats-server 2.14 or later with allow_batched on the stream")
				}
				continue
			}
		} else {
			var dup bool
			dup, err = h.publishOne(ctx, p, pos, out)
			if err == nil {
				pos++
				// The first message not stored before: by the prefix
				// property nothing after it is either.
				known = known || !dup
				pause = retryPauseMin
				continue
			}
		}
		last = err
		if !retryable(err) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%d of %d messages stored: %w (last error: %w)", pos, n, ctx.Err(), last)
		}
		pause = min(2*pause, retryPauseMax)
	}
	if pos < n {
		return fmt.Errorf("%d of %d messages stored: %w", pos, n, last)
	}
	return nil
}

// retryable reports whether storing the rest of a package may succeed if
// tried again soon: everything but a message NATS cannot carry and an
// answer from JetStream that will not change (a sealed stream, ...).
func retryable(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
		return false
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return true
	}
	switch apiErr.ErrorCode {
	case jsErrDuplicateInProcess,
		jetstreamext.JSErrCodeBatchPublishTooManyInflight,
		jetstreamext.JSErrCodeFastBatchUnknownID,
		jetstream.JSErrCodeStreamNotFound,
		jetstream.JSErrCodeJetStreamNotEnabled:
		return true
	}
	return apiErr.Code >= 500 || apiErr.Code == 0
}

// publishOne publishes message i of p and waits for its PubAck.
func (h *Handler) publishOne(ctx context.Context, p *publication, i int, out *outcome) (dup bool, err error) {
	m, family := p.msg(i)
	ack, err := h.pub.PublishMsg(ctx, m)
	if err != nil {
		return false, fmt.Errorf("publish to %s: %w", m.Subject, err)
	}
	h.count(family, ack.Duplicate, out)
	return ack.Duplicate, nil
}

// publishBatch sends messages from..n-1 of p as one fast-ingest batch. It
// returns how many of them, from the first, the commit acknowledged
// (counting them), and an error unless that is all of them.
func (h *Handler) publishBatch(ctx context.Context, p *publication, from int, out *outcome) (int, error) {
	r := h.sendBatch(ctx, []*member{{p: p, from: from}})[0]
	return h.booked(p, from, r, out)
}

// sendBatch sends the messages of every package of grp, package after
// package, each from its member's from, as one fast-ingest batch and
// returns what the commit acknowledged of each. When ctx ends before the
// commit the batch is abandoned.
func (h *Handler) sendBatch(ctx context.Context, grp []*member) []groupResult {
	results := make([]groupResult, len(grp))
	fail := func(err error) []groupResult {
		for i := range results {
			results[i] = groupResult{err: err}
		}
		return results
	}
	wait := batchAckWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 || ctx.Err() != nil {
		return fail(ctx.Err())
	}
	fp, err := jetstreamext.NewFastPublisher(h.pub, jetstreamext.FastPublishFlowControl{
		Flow: batchFlow, MaxOutstandingAcks: batchOutstanding, AckTimeout: wait,
	})
	if err != nil {
		return fail(fmt.Errorf("batch: %w", err))
	}
	h.metrics.batchPackages.Observe(float64(len(grp)))
	last := len(grp) - 1
	for j, m := range grp {
		n := m.p.len()
		for i := m.from; i < n && (j < last || i < n-1); i++ {
			msg, _ := m.p.msg(i)
			if _, err := fp.AddMsg(msg); err != nil {
				if j == 0 && i == m.from && noBatching(err) {
					return fail(fmt.Errorf("%w: %w", errNoBatching, err))
				}
				abandon(fp)
				err = fmt.Errorf("batch message %d of %d to %s: %w", i+1, n, msg.Subject, err)
				// The message failed its own package; the others go on alone.
				for k := range results {
					results[k].err = fmt.Errorf("%w: %s", errGroupFailed, err.Error())
				}
				results[j].err = err
				return results
			}
			if err := ctx.Err(); err != nil {
				abandon(fp)
				return fail(err)
			}
		}
	}
	p := grp[last].p
	msg, _ := p.msg(p.len() - 1)
	ack, err := fp.CommitMsg(ctx, msg)
	if err != nil {
		return fail(fmt.Errorf("batch commit at message %d of %d: %w", p.len(), p.len(), err))
	}
	// A commit acknowledged at stream sequence 0 stored nothing: every
	// message was a duplicate. Otherwise only repeated ids are known to
	// have been (a batch does not say which others it skipped).
	k := int(ack.BatchSize)
	for j, m := range grp {
		sent := m.p.len() - m.from
		results[j] = groupResult{stored: min(max(k, 0), sent), allDup: ack.Sequence == 0}
		k -= sent
	}
	return results
}

// booked counts into out what r says a batch stored of p's messages from
// from on, and returns how many of them, from the first, it stored, and an
// error unless that is all of them.
func (h *Handler) booked(p *publication, from int, r groupResult, out *outcome) (int, error) {
	for i := from; i < from+r.stored; i++ {
		h.count(p.family(i), r.allDup || p.repeated(i), out)
	}
	if sent := p.len() - from; r.err == nil && r.stored < sent {
		r.err = fmt.Errorf("%w: %d of %d messages acknowledged", errShortBatch, r.stored, sent)
	}
	return r.stored, r.err
}

// abandon ends a batch that will not be committed, without waiting for
// the server: it sends the end-of-batch marker (the server keeps what it
// stored, a prefix, and forgets the batch) and drops the subscription for
// the batch's acknowledgements, which jetstreamext otherwise keeps until
// the connection closes. A batch jetstreamext already closed itself is
// left as it is.
func abandon(fp jetstreamext.FastPublisher) {
	if fp.IsClosed() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = fp.Close(ctx)
}

// family is the metric family of message i ("" for a dead letter),
// without building the message.
func (p *publication) family(i int) string {
	if p.whole != nil || p.pp.elems[i].bad != nil {
		return ""
	}
	return p.b.typeOf(p.pp.str(p.pp.elems[i].f[fType])).family
}

// noBatching reports whether err, the answer to a batch's first message,
// says the server does not do batches: it predates them (a plain PubAck
// came back) or the stream does not allow them.
func noBatching(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeFastBatchNotEnabled {
		return true
	}
	return errors.Is(err, jetstreamext.ErrInvalidBatchAck)
}

// count books one acknowledged message.
func (h *Handler) count(family string, dup bool, out *outcome) {
	switch {
	case dup:
		out.Duplicates++
		h.metrics.deduplicated.Inc()
	case family == "":
		out.DeadLettered++
		h.metrics.deadlettered.Inc()
	default:
		out.Published++
		h.metrics.publishedBy[family].Inc()
	}
}
