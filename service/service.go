package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/verify"
)

const (
	// AckWait bounds how long a package waits for its PubAcks before the
	// relay answers 503 and lets Upvest retry.
	AckWait = 10 * time.Second
	// ShutdownGrace bounds each step of the stop: the drain of in-flight
	// packages, and the drain of the NATS connection.
	ShutdownGrace = 30 * time.Second
	// LeaseTTL is the control-loop lease TTL (the contract allows ≤ 15 s).
	LeaseTTL = 10 * time.Second
	// TestDeliveryWait is how long the control loop waits to see the test
	// delivery it asked Upvest for.
	TestDeliveryWait = 30 * time.Second
)

// Keys is where verification keys come from: *verify.StaticKeys or
// *verify.RemoteKeys. When it also has Run(ctx) error (RemoteKeys), the
// service runs it for the refresh.
type Keys interface {
	verify.KeySource
	// Ready reports whether a key set is loaded.
	Ready() bool
}

// Config describes one relay. Fields without a stated default are
// required.
type Config struct {
	// Version is logged at start.
	Version string

	// ListenAddr is the webhook ingress listener, AdminAddr the listener
	// of /healthz, /readyz and /metrics.
	ListenAddr, AdminAddr string
	// TLSCertFile and TLSKeyFile, both set, serve the ingress over TLS
	// (1.2 or later); the pair is read again when either file changes.
	TLSCertFile, TLSKeyFile string
	// WebhookPath is the path Upvest POSTs to.
	WebhookPath string
	// SubjectPrefix is the first subject token(s) of every message.
	SubjectPrefix string
	// SourceBase is the Upvest base URL CloudEvent sources start with.
	SourceBase string
	// MaxBodyBytes bounds a package's body (413 beyond).
	MaxBodyBytes int64
	// AllowedSources, when not empty, are the only networks allowed to
	// POST webhooks; TrustedProxies are those whose X-Forwarded-For is
	// believed.
	AllowedSources, TrustedProxies []netip.Prefix

	// Keys verify signatures; SignatureMaxAge and ClockSkew bound their
	// freshness (verify's defaults when zero).
	Keys                       Keys
	SignatureMaxAge, ClockSkew time.Duration

	// NATSURL lists the NATS servers; empty starts an embedded server
	// storing under DataDir, fsyncing every EmbeddedSync (0: every
	// write). NATS holds further connection options (credentials, TLS).
	NATSURL      string
	NATS         []broker.ConnectOption
	DataDir      string
	EmbeddedSync time.Duration
	// Stream is the stream the relay publishes into; its Replicas also
	// sizes the control loop's lease bucket.
	Stream broker.StreamOptions

	// TracerProvider traces every package (see relay.WithTracerProvider);
	// nil leaves tracing off.
	TracerProvider trace.TracerProvider

	// Upvest, when not nil with a Subscription URL, runs the control loop
	// that keeps Subscription registered, every ReconcileInterval (the
	// keeper's default when zero). An Upvest that also implements
	// keeper.Tester is asked for a test delivery after each registration.
	Upvest            keeper.SubscriptionAPI
	Subscription      keeper.Desired
	ReconcileInterval time.Duration
}

// ErrInvalid is wrapped by New's errors for a Config that cannot work.
var ErrInvalid = errors.New("service: invalid config")

// Service is one relay. Create it with New and run it with Run, once.
type Service struct {
	cfg      Config
	log      zerolog.Logger
	registry *prometheus.Registry
	verifier *verify.Verifier
	admin    *relay.Admin

	running  atomic.Bool
	started  chan struct{} // closed once the listeners are open
	ready    chan struct{} // closed once the stream is there
	storable atomic.Bool   // the stream is there: the ingress may publish

	// Set by Run before started is closed, then read-only.
	ingress, adminL net.Listener
	embedded        *broker.Embedded
	natsURL         string
	nc              *nats.Conn
	connected       <-chan struct{} // closed once nc first connects
	js              jetstream.JetStream
	handler         *relay.Handler
	keeper          *keeper.Keeper
}

// New checks cfg and builds what needs no I/O: the metrics registry and
// the verifier. It returns an error wrapping ErrInvalid for a Config that
// cannot work.
func New(cfg Config, log zerolog.Logger) (*Service, error) {
	switch {
	case cfg.Keys == nil:
		return nil, fmt.Errorf("%w: no verification keys", ErrInvalid)
	case cfg.ListenAddr == "" || cfg.AdminAddr == "":
		return nil, fmt.Errorf("%w: listen and admin addresses are required", ErrInvalid)
	case (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == ""):
		return nil, fmt.Errorf("%w: TLS needs both a certificate and a key file", ErrInvalid)
	case cfg.NATSURL == "" && cfg.DataDir == "":
		return nil, fmt.Errorf("%w: the embedded NATS server needs a data dir", ErrInvalid)
	case cfg.Subscription.URL != "" && cfg.Upvest == nil:
		return nil, fmt.Errorf("%w: a subscription to keep needs the Upvest API", ErrInvalid)
	}
	var vopts []verify.Option
	if cfg.SignatureMaxAge > 0 {
		vopts = append(vopts, verify.WithMaxAge(cfg.SignatureMaxAge))
	}
	if cfg.ClockSkew > 0 {
		vopts = append(vopts, verify.WithClockSkew(cfg.ClockSkew))
	}
	v, err := verify.New(cfg.Keys, vopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	admin := relay.NewAdmin(reg)
	// The /readyz checks as relay_ready{check}, for alerts.
	if err := reg.Register(relay.ReadinessCollector(admin)); err != nil {
		return nil, err
	}
	return &Service{
		cfg:      cfg,
		log:      log,
		registry: reg,
		verifier: v,
		admin:    admin,
		started:  make(chan struct{}),
		ready:    make(chan struct{}),
	}, nil
}

// Started is closed once Run has opened the listeners; the accessors are
// valid from then on.
func (s *Service) Started() <-chan struct{} { return s.started }

// Ready is closed once the stream exists and the ingress stores packages.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// IngressAddr is the address the webhook listener is bound to.
func (s *Service) IngressAddr() string { return s.ingress.Addr().String() }

// AdminAddr is the address the admin listener is bound to.
func (s *Service) AdminAddr() string { return s.adminL.Addr().String() }

// NATSURL is the URL of the NATS servers the relay uses: the embedded
// server's client URL, or the configured one.
func (s *Service) NATSURL() string { return s.natsURL }

// Embedded reports whether the relay runs its own NATS server.
func (s *Service) Embedded() bool { return s.embedded != nil }

// Conn is the relay's NATS connection (it may not be connected yet).
func (s *Service) Conn() *nats.Conn { return s.nc }

// JetStream is the relay's JetStream context.
func (s *Service) JetStream() jetstream.JetStream { return s.js }

// Gatherer exposes the relay's metrics, as /metrics does.
func (s *Service) Gatherer() prometheus.Gatherer { return s.registry }

// KeeperState is the control loop's state; ok is false when it is off.
func (s *Service) KeeperState() (st keeper.State, ok bool) {
	if s.keeper == nil {
		return keeper.State{}, false
	}
	return s.keeper.State(), true
}

// Run runs the relay until ctx ends or a component fails for good, then
// stops in order (see the package documentation). It returns nil after a
// stop asked for through ctx, and the failure otherwise.
func (s *Service) Run(ctx context.Context) (err error) {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("service: Run called twice")
	}
	cfg := s.cfg
	if s.ingress, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		return fmt.Errorf("ingress listener: %w", err)
	}
	defer s.ingress.Close()
	if s.adminL, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer s.adminL.Close()
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, s.log)
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	}

	if err := s.startNATS(); err != nil {
		return err
	}
	defer s.stopNATS()

	s.handler, err = relay.NewHandler(cfg.WebhookPath, s.verifier, s.js,
		relay.WithPrefix(cfg.SubjectPrefix),
		relay.WithSourceBase(cfg.SourceBase),
		relay.WithMaxBodyBytes(cfg.MaxBodyBytes),
		relay.WithAckTimeout(AckWait),
		relay.WithAllowedSources(cfg.AllowedSources),
		relay.WithTrustedProxies(cfg.TrustedProxies),
		relay.WithReadiness(s.storableErr),
		relay.WithTracerProvider(cfg.TracerProvider),
		relay.WithLogger(s.log),
		relay.WithRegisterer(s.registry),
	)
	if err != nil {
		return err
	}
	s.admin.AddCheck("nats", broker.Connected(s.nc))
	streamExists := broker.StreamExists(s.js, cfg.Stream.Name)
	s.admin.AddCheck("stream", func(ctx context.Context) error {
		// Ready only once this replica stores packages, not merely once
		// another one has created the stream.
		if err := s.storableErr(); err != nil {
			return err
		}
		return streamExists(ctx)
	})
	s.admin.AddCheck("keys", func(context.Context) error {
		if !cfg.Keys.Ready() {
			return errors.New("verification keys not loaded yet")
		}
		return nil
	})
	if err := s.newKeeper(); err != nil {
		return err
	}

	ingressSrv := relay.NewServer(cfg.ListenAddr, s.handler, s.log)
	ingressSrv.TLSConfig = tlsConfig
	adminSrv := relay.NewServer(cfg.AdminAddr, s.admin, s.log)
	// Components that are stopped after the ingress has drained run under
	// work, not ctx.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	g, gctx := errgroup.WithContext(work)
	g.Go(func() error { return serve(ingressSrv, s.ingress, tlsConfig != nil) })
	g.Go(func() error { return serve(adminSrv, s.adminL, false) })
	g.Go(func() error { return s.setUpStream(gctx) })
	if r, ok := cfg.Keys.(interface{ Run(context.Context) error }); ok {
		g.Go(func() error { return r.Run(gctx) })
	}
	if s.keeper != nil {
		// The control loop registers the subscription only once packages
		// can be stored: Upvest would otherwise meet 503s and back off.
		g.Go(func() error {
			select {
			case <-s.ready:
				return s.keeper.Run(gctx)
			case <-gctx.Done():
				return nil
			}
		})
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	s.log.Info().
		Str("version", cfg.Version).
		Str("ingress", scheme+"://"+showAddr(s.IngressAddr())+cfg.WebhookPath).
		Str("admin", showAddr(s.AdminAddr())).
		Str("nats", broker.RedactURL(s.natsURL)).
		Str("stream", cfg.Stream.Name).
		Bool("control_loop", s.keeper != nil).
		Msg("relay started")
	close(s.started)

	select {
	case <-ctx.Done():
	case <-gctx.Done(): // a component failed
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	if err := ingressSrv.Shutdown(sctx); err != nil {
		s.log.Warn().Err(err).Msg("ingress shutdown did not finish in time")
	}
	stopWork()
	_ = adminSrv.Shutdown(sctx)
	err = g.Wait()
	if err == nil && ctx.Err() != nil {
		s.log.Info().Msg("relay stopped")
	}
	return err
}

func serve(srv *http.Server, l net.Listener, tls bool) error {
	var err error
	if tls {
		err = srv.ServeTLS(l, "", "")
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// storableErr is the ingress's readiness gate: nil once the stream is
// there and NATS is connected.
func (s *Service) storableErr() error {
	switch {
	case !s.nc.IsConnected():
		return errors.New("NATS not connected")
	case !s.storable.Load():
		return errors.New("stream not set up yet")
	}
	return nil
}

// startNATS starts the embedded server when no URL is configured, then
// dials NATS (without waiting for the connection) and opens JetStream.
func (s *Service) startNATS() error {
	cfg := s.cfg
	s.natsURL = cfg.NATSURL
	opts := cfg.NATS
	if s.natsURL == "" {
		e, err := broker.StartEmbedded(cfg.DataDir, s.log,
			broker.WithSync(cfg.EmbeddedSync), broker.WithURLFile())
		if err != nil {
			return fmt.Errorf("embedded NATS server: %w", err)
		}
		s.embedded = e
		s.natsURL = e.ClientURL()
		opts = append(opts[:len(opts):len(opts)], broker.WithInProcess(e))
	}
	nc, connected, err := broker.Dial(s.natsURL, s.log, opts...)
	if err != nil {
		s.stopNATS()
		return err
	}
	s.nc, s.connected = nc, connected
	if s.js, err = broker.NewJetStream(nc, AckWait); err != nil {
		s.stopNATS()
		return err
	}
	return nil
}

// stopNATS drains the connection and stops the embedded server, if any.
func (s *Service) stopNATS() {
	broker.Close(s.nc, ShutdownGrace)
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
}

// setUpStream waits for NATS, then creates or updates the stream, retrying
// what is transient, and opens the ingress. It returns nil when ctx ends
// first, and an error only for a failure that retrying cannot mend (a
// stream that cannot be made to match, JetStream not enabled).
func (s *Service) setUpStream(ctx context.Context) error {
	cfg := s.cfg
	select {
	case <-s.connected:
	case <-ctx.Done():
		return nil
	}
	if max := s.nc.MaxPayload(); max < cfg.MaxBodyBytes {
		s.log.Warn().Int64("nats_max_payload", max).Int64("max_body_bytes", cfg.MaxBodyBytes).
			Msg("NATS max_payload is below RELAY_MAX_BODY_BYTES: a larger single event cannot be stored and its package is answered 503 until max_payload is raised")
	}
	var stream jetstream.Stream
	err := broker.Retry(ctx, s.log, "stream", func(ctx context.Context) (err error) {
		stream, err = broker.EnsureStream(ctx, s.js, cfg.Stream)
		return err
	})
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("stream %s: %w", cfg.Stream.Name, err)
	}
	batched := broker.BatchPublishing(stream)
	if !batched {
		s.log.Warn().Str("nats_server_version", s.nc.ConnectedServerVersion()).Str("stream", cfg.Stream.Name).
			Msg("the stream does not allow fast-ingest batches (nats-server 2.14 or later needed): packages are stored in order one message at a time, several times slower")
	}
	s.handler.SetBatchPublishing(batched)
	s.storable.Store(true)
	close(s.ready)
	s.log.Info().Str("stream", cfg.Stream.Name).Msg("stream ready; storing webhooks")
	return nil
}

// newKeeper builds the control loop when there is a subscription to keep,
// else exposes its gauges at 0.
func (s *Service) newKeeper() error {
	cfg := s.cfg
	if cfg.Upvest == nil || cfg.Subscription.URL == "" {
		return keeper.RegisterIdle(s.registry)
	}
	opts := []keeper.Option{
		keeper.WithLease(s.js, cfg.Stream.Name+"_keeper", LeaseTTL, cfg.Stream.Replicas),
		keeper.WithTestDelivery(TestDeliveryWait, relay.NewArrivals(s.nc, cfg.SubjectPrefix)),
		keeper.WithLogger(s.log.With().Str("component", "keeper").Logger()),
		keeper.WithRegisterer(s.registry),
	}
	if cfg.ReconcileInterval > 0 {
		opts = append(opts, keeper.WithInterval(cfg.ReconcileInterval))
	}
	k, err := keeper.New(cfg.Upvest, cfg.Subscription, opts...)
	if err != nil {
		return err
	}
	s.keeper = k
	s.admin.AddDetail("keeper", func() any { return k.State() })
	return nil
}

// showAddr renders a listener address for the log: an unspecified host
// (":8080", "[::]:8080") becomes "0.0.0.0" ("every interface"), loopback
// is shown as 127.0.0.1 or [::1].
func showAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() || host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port)
}
