package broker

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
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
	tls       []nats.Option
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

// WithTLS connects over TLS: caFile (PEM) verifies the servers, certFile
// and keyFile are the client certificate for mutual TLS. Empty names are
// ignored; with all three empty the connection uses TLS only when the URL
// says so (tls://).
func WithTLS(caFile, certFile, keyFile string) ConnectOption {
	return func(c *connectConfig) {
		c.tls = nil
		if caFile != "" {
			c.tls = append(c.tls, nats.RootCAs(caFile))
		}
		if certFile != "" || keyFile != "" {
			c.tls = append(c.tls, nats.ClientCert(certFile, keyFile))
		}
	}
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

// Dial opens a NATS connection to url and returns at once, connected or
// not, with a channel closed once it is first connected: a connection that
// cannot be made yet keeps being tried in the background, forever, as does
// a lost one. Every failed attempt is logged with the URL (user
// information redacted) and the cause, and so are connects, disconnects,
// reconnects and asynchronous errors. A connection that is closed or
// drained on purpose logs no warning.
func Dial(url string, log zerolog.Logger, opts ...ConnectOption) (*nats.Conn, <-chan struct{}, error) {
	cfg := connectConfig{name: "upvest-relay"}
	for _, o := range opts {
		o(&cfg)
	}
	shown := RedactURL(url)
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
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn().Err(err).Str("url", shown).Msg("NATS connection attempt failed; retrying")
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return // a stop on purpose, not news
			}
			ev := log.Warn()
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Str("url", shown).Msg("NATS disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			once.Do(func() { close(connected) })
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Debug().Msg("NATS connection closed")
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
	nopts = append(nopts, cfg.tls...)
	if cfg.inProcess != nil {
		nopts = append(nopts, nats.InProcessServer(cfg.inProcess))
	}
	nopts = append(nopts, cfg.extra...)

	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("broker: connect %s: %w", shown, err)
	}
	return nc, connected, nil
}

// Connect is Dial, then a wait until the connection is made. It returns
// ctx's error (and closes the connection) when ctx ends first.
func Connect(ctx context.Context, url string, log zerolog.Logger, opts ...ConnectOption) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: connect %s: %w", RedactURL(url), err)
	}
	nc, connected, err := Dial(url, log, opts...)
	if err != nil {
		return nil, err
	}
	if nc.IsConnected() {
		return nc, nil
	}
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("broker: connect %s: %w", RedactURL(url), ctx.Err())
	}
}

// Close drains nc (pending publishes are flushed, subscriptions finish what
// they hold) and waits up to timeout for it to close, closing it outright
// past that. It is a no-op for a nil or closed connection.
func Close(nc *nats.Conn, timeout time.Duration) {
	if nc == nil || nc.IsClosed() {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() {
		if time.Now().After(deadline) {
			nc.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RedactURL returns the comma-separated NATS URL list s with any user
// information replaced by "redacted", for logs and errors.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User != nil:
			u.User = neturl.User("redacted")
			parts[i] = u.String()
		default:
			parts[i] = strings.TrimSpace(p)
		}
	}
	return strings.Join(parts, ",")
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
