package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	srv      *server.Server
	log      zerolog.Logger
	urlFile  string // "" unless started WithURLFile
	shutdown sync.Once
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
	urlFile      bool
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

// WithURLFile makes the server record its client URL in URLFile under its
// data dir once it accepts connections, and Shutdown remove the file again
// (unless another server has recorded its own URL there since). That is how
// tools on the same machine find the embedded server of a relay running on
// that data dir (see EmbeddedURL). A file that cannot be written is logged,
// not fatal: only those tools depend on it.
func WithURLFile() EmbeddedOption {
	return func(c *embeddedConfig) { c.urlFile = true }
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
	e := &Embedded{srv: srv, log: log}
	log.Info().Str("url", e.ClientURL()).Str("store_dir", dataDir).Msg("embedded NATS JetStream server started")
	if cfg.urlFile {
		path := filepath.Join(dataDir, URLFile)
		if err := writeFileAtomic(path, []byte(e.ClientURL()+"\n")); err != nil {
			log.Warn().Err(err).Msg("could not record the embedded server's URL for local tools (relay replay, deadletters, check)")
		} else {
			e.urlFile = path
		}
	}
	return e, nil
}

// URLFile is the file, in the data dir of an embedded server started
// WithURLFile, that holds the server's client URL (one line) while it runs.
const URLFile = "nats.url"

// ErrNoEmbedded is returned by EmbeddedURL when no embedded server is
// recorded in the data dir.
var ErrNoEmbedded = errors.New("broker: no embedded server recorded")

// EmbeddedURL returns the client URL that a running embedded server
// started WithURLFile on dataDir recorded there. Without such a record it
// returns an error wrapping ErrNoEmbedded. The record may be stale (a
// process killed before Shutdown leaves it behind): a failing connection
// to the URL means no server runs there.
func EmbeddedURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, URLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w in %s", ErrNoEmbedded, dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	url := strings.TrimSpace(string(b))
	if url == "" {
		return "", fmt.Errorf("%w in %s (%s is empty)", ErrNoEmbedded, dataDir, URLFile)
	}
	return url, nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a reader never sees a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
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

// Shutdown stops the server and waits until it has stopped, removing its
// URLFile first if it recorded one. It is safe to call more than once.
func (e *Embedded) Shutdown() {
	e.shutdown.Do(func() {
		if e.urlFile == "" {
			return
		}
		// Another server may have recorded its own URL since (two relays
		// started on one data dir): leave its record alone.
		if b, err := os.ReadFile(e.urlFile); err == nil && strings.TrimSpace(string(b)) == e.ClientURL() {
			if err := os.Remove(e.urlFile); err != nil {
				e.log.Warn().Err(err).Msg("could not remove the embedded server's URL file")
			}
		}
	})
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
func (l serverLogger) Warnf(format string, v ...any) {
	if strings.HasPrefix(format, "Maximum payloads over") {
		// The relay sets MaxPayload deliberately (see there); the server's
		// generic advice against it is noise in every relay command's output.
		l.log.Debug().Msgf(format, v...)
		return
	}
	l.log.Warn().Msgf(format, v...)
}
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
