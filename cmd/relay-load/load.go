package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// The relay's defaults from docs/contract.md, so the floor publishes what
// the relay would.
const (
	streamName    = "UPVEST"
	subjectPrefix = relay.DefaultPrefix
	webhookPath   = "/webhooks/upvest"
	webhookID     = "3f1c5a2e-7b9d-4e0a-9c61-2d8b7f4a1e55"
)

// scenario is one shape of load: Webhooks senders, each with one package
// in flight (Upvest sends a webhook's next package only after the last
// one's 200), sending Packages packages of Events events between them.
type scenario struct {
	Key      string `json:"key"`
	Name     string `json:"name"`
	Webhooks int    `json:"webhooks"`
	Events   int    `json:"events"`
	Pad      int    `json:"pad_bytes_per_event,omitempty"` // 0: events as generated
	Packages int    `json:"packages"`
	Warmup   int    `json:"warmup"`
	Floors   bool   `json:"floors"` // measure the floors too
	// Flood, when not 0, measures the relay twice: calm, then while that
	// many connections that cannot prove they are Upvest stall it (see
	// flood).
	Flood int `json:"flood,omitempty"`
}

// mib1 is a 1 MiB package: 1000 events of about 1 KiB (Upvest's largest
// package size; the generator's events are about half that, so each
// object carries a "notes" string to make up the rest).
const mib1Events, mib1Pad = 1000, 1047

func defaultScenarios() []scenario {
	return []scenario{
		{Key: "single-1mib", Name: "1 webhook, 1 MiB packages", Webhooks: 1, Events: mib1Events, Pad: mib1Pad, Packages: 20, Warmup: 3, Floors: true},
		{Key: "single-20", Name: "1 webhook, 20-event packages", Webhooks: 1, Events: 20, Packages: 300, Warmup: 30, Floors: true},
		{Key: "parallel8-1mib", Name: "8 webhooks, 1 MiB packages", Webhooks: 8, Events: mib1Events, Pad: mib1Pad, Packages: 48, Warmup: 8, Floors: true},
		{Key: "parallel16-20", Name: "16 webhooks, 20-event packages", Webhooks: 16, Events: 20, Packages: 2000, Warmup: 160, Floors: true},
		{Key: "concurrent32-1mib", Name: "32 concurrent 1 MiB packages", Webhooks: 32, Events: mib1Events, Pad: mib1Pad, Packages: 96},
		{Key: "flood200-20", Name: "1 webhook, 20-event packages, 200 stalling strangers", Webhooks: 1, Events: 20, Packages: 200, Warmup: 20, Flood: 200},
	}
}

// config is one invocation of the tool.
type config struct {
	Relay      string        `json:"relay"`      // relay binary; "" builds ./cmd/relay
	InProcess  bool          `json:"in_process"` // a relay.Handler in this process instead
	Runs       int           `json:"runs"`
	Only       []string      `json:"scenarios"`
	Scale      float64       `json:"scale"` // multiplies packages and warm-up
	Seed       uint64        `json:"seed"`
	Soak       time.Duration `json:"soak,omitempty"`
	SyncAlways bool          `json:"sync_always"`
	// NATS, when set, is the NATS server (or cluster) to measure against
	// instead of one started here; Replicas is the stream's replicas.
	NATS     string `json:"nats_url,omitempty"`
	Replicas int    `json:"replicas"`
}

// result is one timed measurement.
type result struct {
	Events  int             `json:"events"`
	Elapsed time.Duration   `json:"elapsed_ns"`
	Latency []time.Duration `json:"-"` // per package, sorted
	P50     time.Duration   `json:"p50_ns"`
	P99     time.Duration   `json:"p99_ns"`
	Max     time.Duration   `json:"max_ns"`
	Rate    float64         `json:"events_per_s"`
	Usage   *usage          `json:"relay_usage,omitempty"` // relay runs against a process
	// LoadCPU is this process's CPU time while timed: the NATS server and
	// the senders (with -inprocess, the relay too).
	LoadCPU time.Duration `json:"load_cpu_ns"`
}

func newResult(events int, elapsed time.Duration, lat []time.Duration) *result {
	slices.Sort(lat)
	r := &result{Events: events, Elapsed: elapsed, Latency: lat}
	r.P50, r.P99, r.Max = r.pct(.50), r.pct(.99), r.pct(1)
	r.Rate = float64(events) / elapsed.Seconds()
	return r
}

// pct is the p-th percentile (0..1] of the per-package latencies.
func (r *result) pct(p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(r.Latency)))) - 1
	return r.Latency[min(max(i, 0), len(r.Latency)-1)]
}

// run is one repetition of a scenario.
type run struct {
	Floor       *result `json:"floor,omitempty"`
	FloorVerify *result `json:"floor_verify,omitempty"`
	// Calm is the relay without the flood, for a flood scenario (whose
	// Relay is measured during the flood).
	Calm  *result `json:"calm,omitempty"`
	Relay *result `json:"relay"`
}

// ratios of one run: the relay against the floor without and with one
// signature verification per package.
type ratios struct {
	P50        float64 `json:"p50"`        // relay p50 ÷ floor p50 (time per package)
	P50Verify  float64 `json:"p50_verify"` // relay p50 ÷ (floor + verify) p50
	Rate       float64 `json:"rate"`       // relay events/s ÷ floor events/s
	RateVerify float64 `json:"rate_verify"`
	P99        float64 `json:"p99"`
	P99Verify  float64 `json:"p99_verify"`
	// CPUShare is the floor + verify's CPU per event (all in this
	// process) ÷ the relay's (the relay process plus this one: the NATS
	// server and the senders); 0 without the relay process's usage. When
	// the machine's cores are the limit, the relay's events/s cannot
	// exceed this share of the floor + verify's.
	CPUShare float64 `json:"cpu_share_verify,omitempty"`
	// FloodP50 and FloodP99: the relay during the flood ÷ the relay calm.
	FloodP50 float64 `json:"flood_p50,omitempty"`
	FloodP99 float64 `json:"flood_p99,omitempty"`
}

func (r run) ratios() ratios {
	div := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	if r.Calm != nil {
		return ratios{FloodP50: div(r.Relay.P50, r.Calm.P50), FloodP99: div(r.Relay.P99, r.Calm.P99)}
	}
	if r.Floor == nil || r.FloorVerify == nil {
		return ratios{}
	}
	q := ratios{
		P50: div(r.Relay.P50, r.Floor.P50), P50Verify: div(r.Relay.P50, r.FloorVerify.P50),
		Rate: r.Relay.Rate / r.Floor.Rate, RateVerify: r.Relay.Rate / r.FloorVerify.Rate,
		P99: div(r.Relay.P99, r.Floor.P99), P99Verify: div(r.Relay.P99, r.FloorVerify.P99),
	}
	if u := r.Relay.Usage; u != nil {
		floor := r.FloorVerify.LoadCPU.Seconds() / float64(r.FloorVerify.Events)
		relay := (u.CPU + r.Relay.LoadCPU).Seconds() / float64(r.Relay.Events)
		q.CPUShare = floor / relay
	}
	return q
}

// scenarioReport is a scenario's runs and the medians over them.
type scenarioReport struct {
	scenario
	Bytes  int    `json:"bytes_per_package"`
	Runs   []run  `json:"runs"`
	Median run    `json:"median"`        // per field, over the runs
	Ratios ratios `json:"median_ratios"` // per ratio, over the runs
	// Allocs and CPU per event in the relay process (median relay run).
	AllocsPerEvent float64       `json:"relay_allocs_per_event,omitempty"`
	CPUPerEvent    time.Duration `json:"relay_cpu_per_event_ns,omitempty"`
	PeakRSS        uint64        `json:"relay_peak_rss_bytes,omitempty"` // highest over the runs
}

// report is everything one invocation measured.
type report struct {
	Config        config           `json:"config"`
	Procs         int              `json:"gomaxprocs"`
	ServerVersion string           `json:"nats_server_version"`
	Verify        time.Duration    `json:"verify_ns"` // one Verify, one goroutine, mean
	Scenarios     []scenarioReport `json:"scenarios"`
	Soak          *soakReport      `json:"soak,omitempty"`
	Targets       []targetResult   `json:"targets"`
}

// loader holds what every measurement shares.
type loader struct {
	cfg      config
	js       jetstream.JetStream
	stream   jetstream.Stream
	emu      *emulator.Server
	verifier *verify.Verifier
	target   target
	log      zerolog.Logger
}

// runAll starts a JetStream server, the emulator (for keys and signatures)
// and the relay, then measures every selected scenario.
func runAll(ctx context.Context, cfg config, log zerolog.Logger) (*report, error) {
	if cfg.Runs < 1 || cfg.Scale <= 0 || cfg.Replicas < 1 {
		return nil, errors.New("runs and replicas must be at least 1 and scale positive")
	}
	scs, err := selectScenarios(cfg.Only, cfg.Scale)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "relay-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	natsURL := cfg.NATS
	if natsURL == "" {
		opts := []broker.EmbeddedOption{broker.WithPort(-1)}
		if cfg.SyncAlways {
			opts = append(opts, broker.WithSync(0))
		}
		srv, err := broker.StartEmbedded(filepath.Join(dir, "nats"), log.Level(zerolog.WarnLevel), opts...)
		if err != nil {
			return nil, err
		}
		defer srv.Shutdown()
		natsURL = srv.ClientURL()
	}
	nc, err := broker.Connect(ctx, natsURL, log.Level(zerolog.WarnLevel), broker.WithName("relay-load"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := broker.NewJetStream(nc, relay.DefaultAckTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.NATS != "" {
		// A server of the user's: the measurement's stream must be its own,
		// and goes when the measurement ends.
		if _, err := js.Stream(ctx, streamName); err == nil {
			return nil, fmt.Errorf("stream %s exists on %s: measure against a server used for nothing else", streamName, cfg.NATS)
		}
		defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), streamName) }()
	}
	// The anchor stays while the measurement's stream is replaced (see
	// freshStream): once an account's last stream is deleted, nats-server
	// removes the account's stream directory in the background, which can
	// race with creating the next stream ("could not create storage
	// directory").
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: anchorStream, Subjects: []string{anchorSubject}, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("anchor stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), anchorStream) }()
	emu, err := emulator.New()
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	jwks, err := emu.JWKS()
	if err != nil {
		return nil, err
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		return nil, err
	}
	verifier, err := verify.New(keys)
	if err != nil {
		return nil, err
	}
	l := &loader{cfg: cfg, js: js, emu: emu, verifier: verifier, log: log}
	conns := relay.DefaultMaxInFlight
	for _, sc := range scs {
		conns = max(conns, sc.Webhooks)
	}
	if cfg.InProcess {
		if _, err := broker.EnsureStream(ctx, js, streamOptions(cfg.Replicas)); err != nil {
			return nil, err
		}
		if l.target, err = startInProcess(js, verifier, conns, log); err != nil {
			return nil, err
		}
	} else {
		bin := cfg.Relay
		if bin == "" {
			log.Info().Msg("building ./cmd/relay")
			if bin, err = buildRelay(ctx, dir); err != nil {
				return nil, err
			}
		}
		// The relay creates the stream, as in production.
		if l.target, err = startProcess(ctx, bin, dir, natsURL, cfg.Replicas, jwks, conns); err != nil {
			return nil, err
		}
	}
	defer l.target.close()
	if l.stream, err = js.Stream(ctx, streamName); err != nil {
		return nil, err
	}

	rep := &report{Config: cfg, Procs: runtime.GOMAXPROCS(0), ServerVersion: nc.ConnectedServerVersion()}
	gen := emulator.NewGenerator(cfg.Seed)
	for _, sc := range scs {
		tmpl, err := newTemplate(gen, sc.Events, sc.Pad)
		if err != nil {
			return nil, err
		}
		if rep.Verify == 0 {
			if rep.Verify, err = l.verifyCost(ctx, tmpl); err != nil {
				return nil, err
			}
		}
		sr := scenarioReport{scenario: sc, Bytes: len(tmpl.body)}
		for i := range cfg.Runs {
			log.Info().Str("scenario", sc.Name).Int("run", i+1).Msg("measuring")
			r, err := l.runScenario(ctx, sc, tmpl)
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", sc.Name, i+1, err)
			}
			sr.Runs = append(sr.Runs, r)
		}
		sr.summarize()
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	if cfg.Soak > 0 {
		sc := defaultScenarios()[4]
		tmpl, err := newTemplate(gen, sc.Events, sc.Pad)
		if err != nil {
			return nil, err
		}
		if rep.Soak, err = l.soak(ctx, sc, tmpl, cfg.Soak); err != nil {
			return nil, fmt.Errorf("soak: %w", err)
		}
	}
	rep.Targets = evaluate(rep)
	return rep, nil
}

// The anchor stream: see runAll.
const (
	anchorStream  = "RELAY_LOAD_ANCHOR"
	anchorSubject = "relay-load.anchor"
)

func streamOptions(replicas int) broker.StreamOptions {
	return broker.StreamOptions{Name: streamName, Prefix: subjectPrefix, MaxAge: 720 * time.Hour, Replicas: replicas, Duplicates: 2 * time.Hour}
}

func selectScenarios(only []string, scale float64) ([]scenario, error) {
	var out []scenario
	for _, sc := range defaultScenarios() {
		if len(only) > 0 && !slices.Contains(only, sc.Key) {
			continue
		}
		sc.Packages = max(1, int(float64(sc.Packages)*scale))
		sc.Warmup = int(float64(sc.Warmup) * scale)
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario among %v", only)
	}
	return out, nil
}

// runScenario measures the floor, the floor with one verification per
// package and the relay, each on fresh packages.
func (l *loader) runScenario(ctx context.Context, sc scenario, tmpl *template) (run, error) {
	var r run
	var err error
	n := sc.Warmup + sc.Packages
	if sc.Floors {
		pkgs := instances(tmpl, n, true)
		if r.Floor, err = l.measure(ctx, sc, pkgs, false, func(ctx context.Context, p *pkg) error {
			return publishRaw(ctx, l.js, p.msgs)
		}); err != nil {
			return r, fmt.Errorf("floor: %w", err)
		}
		pkgs = instances(tmpl, n, true)
		if err := l.signAll(pkgs); err != nil {
			return r, err
		}
		if r.FloorVerify, err = l.measure(ctx, sc, pkgs, false, func(ctx context.Context, p *pkg) error {
			if err := l.verifyOne(ctx, p); err != nil {
				return err
			}
			return publishRaw(ctx, l.js, p.msgs)
		}); err != nil {
			return r, fmt.Errorf("floor + verify: %w", err)
		}
	}
	if sc.Flood > 0 {
		pkgs := instances(tmpl, n, false)
		if err := l.signAll(pkgs); err != nil {
			return r, err
		}
		if r.Calm, err = l.measure(ctx, sc, pkgs, true, l.target.post); err != nil {
			return r, fmt.Errorf("relay, calm: %w", err)
		}
		stop, err := l.flood(ctx, sc.Flood, tmpl)
		if err != nil {
			return r, err
		}
		defer stop()
	}
	pkgs := instances(tmpl, n, false)
	if err := l.signAll(pkgs); err != nil {
		return r, err
	}
	if r.Relay, err = l.measure(ctx, sc, pkgs, true, l.target.post); err != nil {
		return r, fmt.Errorf("relay: %w", err)
	}
	return r, nil
}

func instances(t *template, n int, msgs bool) []*pkg {
	out := make([]*pkg, n)
	for i := range out {
		out[i] = t.instance(msgs)
	}
	return out
}

// signAll signs the packages as Upvest would, before any clock starts
// (signing is Upvest's cost). The signatures expire 60 s later.
func (l *loader) signAll(pkgs []*pkg) error {
	_, err := parallel(context.Background(), len(pkgs), runtime.GOMAXPROCS(0), func(_ context.Context, i int) error {
		return sign(l.emu, pkgs[i])
	})
	return err
}

// verifyOne is the relay's unavoidable per-package work: one verification
// of the signature and the digest.
func (l *loader) verifyOne(ctx context.Context, p *pkg) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://relay"+webhookPath, nil)
	if err != nil {
		return err
	}
	req.Header = p.header
	if err := l.verifier.Verify(ctx, req, p.body); err != nil {
		return fmt.Errorf("verifying an emulator signature: %w", err)
	}
	return nil
}

// verifyCost is the mean time of one Verify of a package of tmpl's size,
// on one goroutine.
func (l *loader) verifyCost(ctx context.Context, tmpl *template) (time.Duration, error) {
	pkgs := instances(tmpl, 20, false)
	if err := l.signAll(pkgs); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, p := range pkgs {
		if err := l.verifyOne(ctx, p); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(len(pkgs)), nil
}

// publishRaw is what an ideal relay does for one package: publish every
// message asynchronously, then wait for every PubAck.
func publishRaw(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) error {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				return fmt.Errorf("unexpected duplicate %s", f.Msg().Header.Get(nats.MsgIdHdr))
			}
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// measure sends the warm-up packages, then times the rest from
// sc.Webhooks senders, and checks that the stream holds exactly one
// message per event before replacing it with an empty one.
func (l *loader) measure(ctx context.Context, sc scenario, pkgs []*pkg, relayRun bool, send func(context.Context, *pkg) error) (*result, error) {
	if _, err := parallel(ctx, sc.Warmup, sc.Webhooks, func(ctx context.Context, i int) error {
		return send(ctx, pkgs[i])
	}); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	runtime.GC()
	var u0 usage
	if relayRun {
		l.target.resetPeak()
		u0, _ = l.target.usage()
	}
	cpu0 := cpuTime()
	start := time.Now()
	lat, err := parallel(ctx, sc.Packages, sc.Webhooks, func(ctx context.Context, i int) error {
		return send(ctx, pkgs[sc.Warmup+i])
	})
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if err != nil {
		return nil, err
	}
	r := newResult(sc.Packages*sc.Events, elapsed, lat)
	r.LoadCPU = cpu
	if relayRun {
		if u1, ok := l.target.usage(); ok {
			u := u1.minus(u0)
			r.Usage = &u
		}
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	if want := uint64(len(pkgs) * sc.Events); info.State.Msgs != want {
		return nil, fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
	if err := l.freshStream(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// freshStream replaces the stream with an empty one of the same
// configuration, so that every measurement starts from the same server
// state: a purge keeps every message id of the duplicate window (hours),
// and after the 1 MiB scenarios the server would carry about a million
// of them, whose garbage collection and lookups this process (the
// server's) would pay in the later measurements.
func (l *loader) freshStream(ctx context.Context) error {
	cfg := l.stream.CachedInfo().Config
	if err := l.js.DeleteStream(ctx, cfg.Name); err != nil {
		return fmt.Errorf("replacing the stream: %w", err)
	}
	s, err := l.js.CreateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replacing the stream: %w", err)
	}
	l.stream = s
	return nil
}

// parallel calls do for 0..n-1 from c goroutines and returns each call's
// duration; the first error stops the rest.
func parallel(ctx context.Context, n, c int, do func(context.Context, int) error) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				t := time.Now()
				if err := do(ctx, i); err != nil {
					cancel(fmt.Errorf("package %d: %w", i, err))
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return lat, nil
}

// summarize fills the medians over the runs.
func (s *scenarioReport) summarize() {
	pick := func(get func(run) *result) *result {
		var rs []*result
		for _, r := range s.Runs {
			if x := get(r); x != nil {
				rs = append(rs, x)
			}
		}
		if len(rs) == 0 {
			return nil
		}
		m := &result{
			Events:  rs[0].Events,
			Elapsed: medianOf(rs, func(r *result) time.Duration { return r.Elapsed }),
			P50:     medianOf(rs, func(r *result) time.Duration { return r.P50 }),
			P99:     medianOf(rs, func(r *result) time.Duration { return r.P99 }),
			Max:     medianOf(rs, func(r *result) time.Duration { return r.Max }),
			LoadCPU: medianOf(rs, func(r *result) time.Duration { return r.LoadCPU }),
		}
		m.Rate = float64(m.Events) / m.Elapsed.Seconds()
		if rs[0].Usage != nil {
			m.Usage = &usage{
				CPU:     medianOf(rs, func(r *result) time.Duration { return r.Usage.CPU }),
				Mallocs: uint64(medianOf(rs, func(r *result) time.Duration { return time.Duration(r.Usage.Mallocs) })),
				Package: medianOf(rs, func(r *result) time.Duration { return r.Usage.Package }),
				Publish: medianOf(rs, func(r *result) time.Duration { return r.Usage.Publish }),
				GCs:     uint64(medianOf(rs, func(r *result) time.Duration { return time.Duration(r.Usage.GCs) })),
				Batches: uint64(medianOf(rs, func(r *result) time.Duration { return time.Duration(r.Usage.Batches) })),
			}
			for _, r := range rs {
				m.Usage.PeakRSS = max(m.Usage.PeakRSS, r.Usage.PeakRSS)
			}
		}
		return m
	}
	s.Median = run{
		Floor:       pick(func(r run) *result { return r.Floor }),
		FloorVerify: pick(func(r run) *result { return r.FloorVerify }),
		Calm:        pick(func(r run) *result { return r.Calm }),
		Relay:       pick(func(r run) *result { return r.Relay }),
	}
	rs := make([]ratios, len(s.Runs))
	for i, r := range s.Runs {
		rs[i] = r.ratios()
	}
	f := func(get func(ratios) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	s.Ratios = ratios{
		P50: f(func(r ratios) float64 { return r.P50 }), P50Verify: f(func(r ratios) float64 { return r.P50Verify }),
		Rate: f(func(r ratios) float64 { return r.Rate }), RateVerify: f(func(r ratios) float64 { return r.RateVerify }),
		P99: f(func(r ratios) float64 { return r.P99 }), P99Verify: f(func(r ratios) float64 { return r.P99Verify }),
		CPUShare: f(func(r ratios) float64 { return r.CPUShare }),
		FloodP50: f(func(r ratios) float64 { return r.FloodP50 }), FloodP99: f(func(r ratios) float64 { return r.FloodP99 }),
	}
	if u := s.Median.Relay.Usage; u != nil {
		s.AllocsPerEvent = float64(u.Mallocs) / float64(s.Median.Relay.Events)
		s.CPUPerEvent = u.CPU / time.Duration(s.Median.Relay.Events)
		s.PeakRSS = u.PeakRSS
	}
}

func medianOf[T any](xs []T, get func(T) time.Duration) time.Duration {
	v := make([]time.Duration, len(xs))
	for i, x := range xs {
		v[i] = get(x)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
