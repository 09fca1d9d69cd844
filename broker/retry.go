package broker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// transient reports whether err from a JetStream API call means "ask
// again later": the call timed out, nobody answered (no server, or a
// cluster still electing a leader), or the connection is down.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// Retry bounds of Retry.
const (
	// RetryCallTimeout bounds each attempt.
	RetryCallTimeout = 5 * time.Second
	retryFirstPause  = 100 * time.Millisecond
	retryMaxPause    = 2 * time.Second
)

// Retry runs call, an idempotent JetStream set-up step named what (for
// the log), until it succeeds, fails with an error that is not transient (a timeout, no responders, the
// connection down),
// or ctx ends; each attempt is bounded by RetryCallTimeout and the pause
// between attempts grows from 100 ms to 2 s. Every failed attempt is
// logged with its cause. It returns call's last error, or ctx's when ctx
// ended before any attempt finished.
//
// A cluster may still be electing leaders at start, and replicas starting
// together race to create the same stream (nats-server leaves both
// requests unanswered until they time out): both are ridden out here.
func Retry(ctx context.Context, log zerolog.Logger, what string, call func(context.Context) error) error {
	pause := retryFirstPause
	for {
		actx, cancel := context.WithTimeout(ctx, RetryCallTimeout)
		err := call(actx)
		cancel()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		log.Warn().Err(err).Str("step", what).Int64("retry_in_ms", pause.Milliseconds()).
			Msg("JetStream did not answer; retrying")
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, retryMaxPause)
	}
}
