package broker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// DefaultPort is the port the embedded server prefers, NATS' usual client
// port, so local tools (the nats CLI, downstream services) find it.
const DefaultPort = 4222

// MaxPayload is the embedded server's largest message: 16 MiB, as large as
// the relay's default body limit, because Upvest sends an event larger than
// a package's size limit on its own and NATS' default of 1 MiB would refuse
// it (and a refused event can only be answered with a non-2xx, which blocks
// the webhook until it is stored).
const MaxPayload = 16 << 20

// ErrNotReady is returned by StartEmbedded when the server did not become
// ready for connections in time.
var ErrNotReady = errors.New("broker: embedded server not ready")

// Embedded is an in-process nats-server with JetStream enabled.
type Embedded struct {
	srv *server.Server
}

// EmbeddedOption tunes StartEmbedded.
type EmbeddedOption func(*embeddedConfig)

type embeddedConfig struct {
	host         string
	port         int
	fallback     bool
	name         string
	readyTimeout time.Duration
	sync         *time.Duration
}

// WithPort makes the server listen on port exactly: -1 picks a random free
// port (what tests want); any other value fails if the port is taken.
// Without it the server prefers DefaultPort and falls back to a random
// port when DefaultPort is taken.
func WithPort(port int) EmbeddedOption {
	return func(c *embeddedConfig) { c.port, c.fallback = port, false }
}

// WithPreferredPort makes the server listen on port when it is free and
// on a random port otherwise (the default, with DefaultPort).
func WithPreferredPort(port int) EmbeddedOption {
	return func(c *embeddedConfig) { c.port, c.fallback = port, true }
}

// WithHost sets the listen address (default 127.0.0.1).
func WithHost(host string) EmbeddedOption {
	return func(c *embeddedConfig) { c.host = host }
}

// WithServerName sets the server's name (default "upvest-relay").
func WithServerName(name string) EmbeddedOption {
	return func(c *embeddedConfig) { c.name = name }
}

// WithReadyTimeout bounds how long StartEmbedded waits for the server to
// accept connections (default 10s: JetStream may recover a large store).
func WithReadyTimeout(d time.Duration) EmbeddedOption {
	return func(c *embeddedConfig) { c.readyTimeout = d }
}

// WithSync sets when JetStream writes reach the disk: 0 means after every
// write (fsync always: an acknowledged message survives power loss), any
// other value is the background sync interval (an acknowledged message
// can be lost with the OS page cache if power fails before the next sync).
// Without it the server keeps nats-server's default interval (2 min).
func WithSync(interval time.Duration) EmbeddedOption {
	return func(c *embeddedConfig) { c.sync = &interval }
}

// StartEmbedded starts a nats-server with JetStream storing under dataDir
// and waits until it accepts connections. The server does not install
// signal handlers; stop it with Shutdown. Server log lines go to log.
func StartEmbedded(dataDir string, log zerolog.Logger, opts ...EmbeddedOption) (*Embedded, error) {
	cfg := embeddedConfig{
		host:         "127.0.0.1",
		port:         DefaultPort,
		fallback:     true,
		name:         "upvest-relay",
		readyTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if dataDir == "" {
		return nil, errors.New("broker: embedded server needs a data dir")
	}
	port := cfg.port
	if cfg.fallback && !portFree(cfg.host, port) {
		port = server.RANDOM_PORT
	}
	srv, err := startServer(dataDir, port, cfg, log)
	if errors.Is(err, errListen) && cfg.fallback && port != server.RANDOM_PORT {
		// The preferred port was taken between the check and the listen.
		srv, err = startServer(dataDir, server.RANDOM_PORT, cfg, log)
	}
	if err != nil {
		return nil, err
	}
	e := &Embedded{srv: srv}
	log.Info().Str("url", e.ClientURL()).Str("store_dir", dataDir).Msg("embedded NATS JetStream server started")
	return e, nil
}

// errListen marks a server that could not listen on its port; it is a
// kind of ErrNotReady.
var errListen = fmt.Errorf("%w: cannot listen", ErrNotReady)

// startServer starts one server on port and waits until it accepts
// connections, fails to listen (errListen), or the ready timeout passes.
func startServer(dataDir string, port int, cfg embeddedConfig, log zerolog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: cfg.name,
		Host:       cfg.host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true,
		MaxPayload: MaxPayload,
	}
	if cfg.sync != nil {
		if *cfg.sync == 0 {
			opts.SyncAlways = true
		} else {
			opts.SyncInterval = *cfg.sync
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded server: %w", err)
	}
	fatal := make(chan string, 1)
	srv.SetLoggerV2(serverLogger{log: log.With().Str("component", "nats-server").Logger(), fatal: fatal}, false, false, false)
	srv.Start()
	deadline := time.Now().Add(cfg.readyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		var err error
		select {
		case msg := <-fatal:
			err = fmt.Errorf("%w: %s:%d: %s", errListen, cfg.host, port, msg)
		default:
			if time.Now().Before(deadline) {
				continue
			}
			err = fmt.Errorf("%w: %s:%d within %s", ErrNotReady, cfg.host, port, cfg.readyTimeout)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	return srv, nil
}

// ClientURL is the nats:// URL clients connect to.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Server is the underlying nats-server, for tests and in-process
// connections.
func (e *Embedded) Server() *server.Server { return e.srv }

// InProcessConn implements nats.InProcessConnProvider, so Connect can use
// the server without a TCP round trip (see WithInProcess).
func (e *Embedded) InProcessConn() (net.Conn, error) { return e.srv.InProcessConn() }

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// portFree reports whether host:port can be listened on right now.
func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// serverLogger adapts zerolog to nats-server's Logger. Fatal lines (which
// for an embedded server mean it could not listen) are also reported on
// fatal, without blocking.
type serverLogger struct {
	log   zerolog.Logger
	fatal chan<- string
}

func (l serverLogger) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error().Msg(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l serverLogger) Errorf(format string, v ...any) { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any) { l.log.Trace().Msgf(format, v...) }
