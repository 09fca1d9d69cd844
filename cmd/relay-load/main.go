// Command relay-load measures the relay against the floor JetStream sets,
// in one process on one machine, and prints the ratios.
//
// It starts an embedded JetStream server (store in a temporary directory,
// removed afterwards), generates packages of realistic Upvest events with the
// emulator's generator, and runs, each against a fresh stream made by
// broker.EnsureStream with the relay's defaults:
//
//  1. raw JetStream (floor): C publishers, each publishing a package's K
//     CloudEvent messages (same subjects, headers and data as the relay's)
//     with PublishMsgAsync and waiting for every PubAck;
//  2. relay: a relay.Handler with a verify.Verifier over the emulator's JWKS,
//     behind relay.NewServer on loopback, fed by C HTTP clients POSTing the
//     same packages, signed by the emulator exactly as Upvest signs them;
//  3. relay, no signature check (diagnostic, -diagnostic=false to skip): the
//     same with a verifier that accepts everything, to show what signature
//     verification costs. The relay itself has no such mode.
//
// Every run checks that each package succeeded (200 for the relay) and that
// the stream holds exactly one message per event. Packages are signed before
// the relay's clock starts (signing is Upvest's cost); signatures expire 60 s
// after signing, so keep -packages small enough for a run of well under a
// minute. The table goes to stdout, progress to stderr.
//
// Per-package latency is from the first publish to the last PubAck (raw)
// or from sending the request to reading the answer (relay). CPU is the whole
// process's (server, relay and load generator together) per timed event.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/rs/zerolog"
)

func main() { os.Exit(cli()) }

func cli() int {
	cfg := config{}
	flag.IntVar(&cfg.Packages, "packages", 2000, "timed packages per run")
	flag.IntVar(&cfg.EventsPerPackage, "events-per-package", 20, "events per package (K)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 8, "concurrent publishers / HTTP clients (C)")
	flag.IntVar(&cfg.Warmup, "warmup", 200, "untimed packages sent before each run's clock starts")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "event generator seed")
	flag.BoolVar(&cfg.Diagnostic, "diagnostic", true, "also run the relay without signature check (labelled diagnostic)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Fatal().Err(err).Msg("cpu profile")
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := run(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("relay-load failed")
		return 1
	}
	writeReport(os.Stdout, rep)
	return 0
}

// writeReport writes the table and the ratios.
func writeReport(w io.Writer, r *report) {
	c := r.Config
	fmt.Fprintf(w, "relay-load: %d packages × %d events (+%d warm-up packages), concurrency %d, GOMAXPROCS %d\n\n",
		c.Packages, c.EventsPerPackage, c.Warmup, c.Concurrency, r.Procs)
	fmt.Fprintf(w, "%-40s %10s %9s %9s %9s %9s %12s\n", "run", "events/s", "p50", "p90", "p99", "max", "CPU/event")
	runs := []*result{r.Raw, r.Relay}
	if r.NoVerify != nil {
		runs = append(runs, r.NoVerify)
	}
	for _, x := range runs {
		fmt.Fprintf(w, "%-40s %10.0f %9s %9s %9s %9s %12s\n", x.Name, x.rate(),
			ms(x.pct(.50)), ms(x.pct(.90)), ms(x.pct(.99)), ms(x.pct(1)), x.cpuPerEvent().Round(100*time.Nanosecond))
	}
	fmt.Fprintln(w, "(latency per package; CPU of the whole process: server, relay and load generator)")
	fmt.Fprintln(w)
	for _, x := range runs[1:] {
		fmt.Fprintf(w, "%s ÷ floor: throughput %.2f, p50 %.2f×, p99 %.2f×, CPU/event %.2f×\n", x.Name,
			x.rate()/r.Raw.rate(), ratio(x.pct(.50), r.Raw.pct(.50)), ratio(x.pct(.99), r.Raw.pct(.99)),
			ratio(x.cpuPerEvent(), r.Raw.cpuPerEvent()))
	}
	ceiling := float64(r.Procs) / r.Verify.Seconds()
	fmt.Fprintf(w, "signature verification (P-521): %s per package on one core, %s per event; alone it caps %d cores at %.0f packages/s = %.0f events/s\n",
		ms(r.Verify), (r.Verify / time.Duration(c.EventsPerPackage)).Round(time.Microsecond), r.Procs, ceiling, ceiling*float64(c.EventsPerPackage))
	fmt.Fprintf(w, "(signing the %d packages took %s before the relay's clock started: Upvest's cost, not timed)\n",
		c.Warmup+c.Packages, r.Sign.Round(time.Millisecond))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
