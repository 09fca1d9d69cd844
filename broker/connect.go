package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// ConnectOption tunes Connect.
type ConnectOption func(*connectConfig)

type connectConfig struct {
	name      string
	creds     string
	inProcess nats.InProcessConnProvider
	extra     []nats.Option
}

// WithName sets the connection name the server shows (default
// "upvest-relay").
func WithName(name string) ConnectOption {
	return func(c *connectConfig) { c.name = name }
}

// WithCredentials authenticates with a NATS credentials file (JWT + NKey
// seed). An empty path is ignored.
func WithCredentials(path string) ConnectOption {
	return func(c *connectConfig) { c.creds = path }
}

// WithInProcess connects to an embedded server in process instead of over
// TCP; the url passed to Connect is then only used in log lines.
func WithInProcess(p nats.InProcessConnProvider) ConnectOption {
	return func(c *connectConfig) { c.inProcess = p }
}

// WithNATSOptions appends raw nats.go options, applied after Connect's
// own (so they win), e.g. a shorter nats.ReconnectWait in tests.
func WithNATSOptions(opts ...nats.Option) ConnectOption {
	return func(c *connectConfig) { c.extra = append(c.extra, opts...) }
}

// Ping settings of Connect; see the comment where they are applied.
const (
	pingInterval = 2 * time.Second
	maxPingsOut  = 2
)

// Connect opens a NATS connection to url that reconnects forever, logging
// connects, disconnects, reconnects, closes and asynchronous errors on log.
// It retries the first connection too and returns once connected, or with
// ctx's error (and the connection closed) when ctx ends first.
func Connect(ctx context.Context, url string, log zerolog.Logger, opts ...ConnectOption) (*nats.Conn, error) {
	cfg := connectConfig{name: "upvest-relay"}
	for _, o := range opts {
		o(&cfg)
	}
	connected := make(chan struct{})
	var once sync.Once
	nopts := []nats.Option{
		nats.Name(cfg.name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		// A frozen server (SIGSTOP, a hung VM) keeps its TCP connection
		// open and simply stops answering: pings are how a client notices.
		// With a ping every 2 s and the connection declared stale after 2
		// unanswered ones, a relay leaves a frozen node within about 6 s and
		// reconnects to a healthy one; a package stuck on the frozen node
		// fails its ack wait and Upvest's retry lands on the new
		// connection, well inside 15 s. nats.go's defaults (2 min, 2) would
		// keep it there for minutes.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.ConnectHandler(func(nc *nats.Conn) {
			once.Do(func() { close(connected) })
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			ev := log.Warn()
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("NATS disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Info().Msg("NATS connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	}
	if cfg.creds != "" {
		nopts = append(nopts, nats.UserCredentials(cfg.creds))
	}
	if cfg.inProcess != nil {
		nopts = append(nopts, nats.InProcessServer(cfg.inProcess))
	}
	nopts = append(nopts, cfg.extra...)

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: connect: %w", err)
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect: %w", err)
	}
	if nc.IsConnected() {
		// The handler may not have run yet; it will, and once keeps it
		// from closing twice.
		return nc, nil
	}
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("broker: connect: %w", ctx.Err())
	}
}

// Connected returns a readiness check that passes while nc is connected.
func Connected(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if nc.IsConnected() {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNotConnected, nc.Status())
	}
}

// ErrNotConnected is the error of the Connected check.
var ErrNotConnected = errors.New("broker: not connected to NATS")
