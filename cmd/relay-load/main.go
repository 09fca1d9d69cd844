// Command relay-load measures the relay against the floor JetStream sets,
// on one machine, and prints the ratios.
//
// It starts a JetStream server (embedded in this process, store in a
// temporary directory removed afterwards) and the relay as a separate
// process, `relay serve` built from ./cmd/relay (or -relay PATH), connected
// to that server over loopback with the emulator's verification keys in a
// static JWKS file and the control loop off; the relay creates its stream
// as in production. Packages are realistic Upvest events from the
// emulator's generator, signed exactly as Upvest signs them.
//
// Each scenario is a number of webhooks, each with one package in flight
// (Upvest sends a webhook's next package only after the last one's 200),
// and a package size. For each run of each scenario, on fresh packages:
//
//  1. floor: each sender publishes its package's CloudEvent messages (same
//     subjects, headers and data as the relay's) with PublishMsgAsync and
//     waits for every PubAck: what JetStream itself needs;
//  2. floor + verify: the same after one signature verification of the
//     package (P-521 and the digest), which the relay cannot avoid;
//  3. relay: the senders POST the signed packages to the relay and wait for
//     the 200.
//
// Every run checks each answer and that the stream holds exactly one
// message per event, then purges it. Ratios are the relay over the floor of
// the same run; the tool reports the median over -runs runs. The relay's
// CPU time and heap allocations (its go_memstats_mallocs_total) per event
// and its peak RSS (VmHWM, reset before each timed run) come from the
// relay process. -soak D runs 32 concurrent 1 MiB packages for D and
// samples the relay's RSS every second.
//
// -inprocess runs a relay.Handler inside this process instead (quicker,
// but it shares CPU, heap and GC with the load generator and the server,
// and measures no usage). The table goes to stdout (-json for machines),
// progress to stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

func main() { os.Exit(cli()) }

func cli() int {
	cfg := config{}
	var only string
	flag.StringVar(&cfg.Relay, "relay", "", "relay binary to run as `relay serve` (default: go build ./cmd/relay into a temporary directory)")
	flag.BoolVar(&cfg.InProcess, "inprocess", false, "run a relay.Handler in this process instead of a relay process (no usage figures)")
	flag.IntVar(&cfg.Runs, "runs", 3, "runs of each scenario; ratios are the median")
	flag.StringVar(&only, "scenarios", "", "comma-separated scenario keys (default all): "+scenarioKeys())
	flag.Float64Var(&cfg.Scale, "scale", 1, "multiply each scenario's package counts")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "event generator seed")
	flag.DurationVar(&cfg.Soak, "soak", 0, "after the scenarios, keep 32 concurrent 1 MiB packages going for this long, sampling the relay's RSS (e.g. 10m)")
	flag.BoolVar(&cfg.SyncAlways, "sync-always", false, "the NATS server fsyncs every write (the embedded relay's default); otherwise nats-server's default interval")
	flag.StringVar(&cfg.NATS, "nats", "", "NATS server or cluster URLs to measure against, used for nothing else (it must not hold a stream UPVEST; the streams the measurement makes, UPVEST and RELAY_LOAD_ANCHOR, are deleted at the end); default: a server started here; -sync-always does not apply")
	flag.IntVar(&cfg.Replicas, "replicas", 1, "the stream's replicas (3 on a 3-node cluster)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process to this file (with -inprocess, the relay's too)")
	flag.Parse()
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runAll(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("relay-load failed")
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1
		}
	} else {
		writeReport(os.Stdout, rep)
	}
	return 0
}

func scenarioKeys() string {
	var keys []string
	for _, sc := range defaultScenarios() {
		keys = append(keys, sc.Key)
	}
	return strings.Join(keys, ", ")
}

// writeReport writes the tables, the ratios and the targets.
func writeReport(w io.Writer, r *report) {
	mode := "relay process"
	if r.Config.InProcess {
		mode = "relay in process (-inprocess)"
	}
	fmt.Fprintf(w, "relay-load: %s, nats-server %s, GOMAXPROCS %d, %d runs per scenario (medians)\n", mode, r.ServerVersion, r.Procs, r.Config.Runs)
	fmt.Fprintf(w, "one signature verification (P-521 + digest of a package): %s on one core\n", ms(r.Verify))
	fmt.Fprintln(w, "(load CPU: this process, i.e. the NATS server and the senders; relay process: the relay alone)")
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n%s: %d events, %s per package, %d packages after %d warm-up\n", s.Name, s.Events, mib(uint64(s.Bytes)), s.Packages, s.Warmup)
		fmt.Fprintf(w, "  %-16s %10s %10s %10s %10s %14s\n", "", "events/s", "p50", "p99", "max", "load CPU/event")
		for _, x := range []struct {
			name string
			r    *result
		}{{"floor", s.Median.Floor}, {"floor + verify", s.Median.FloorVerify}, {"relay, calm", s.Median.Calm}, {"relay", s.Median.Relay}} {
			if x.r != nil {
				fmt.Fprintf(w, "  %-16s %10.0f %10s %10s %10s %14s\n", x.name, x.r.Rate, ms(x.r.P50), ms(x.r.P99), ms(x.r.Max),
					(x.r.LoadCPU / time.Duration(x.r.Events)).Round(100*time.Nanosecond))
			}
		}
		if s.Floors {
			q := s.Ratios
			fmt.Fprintf(w, "  relay ÷ floor:          p50 %.2f×  p99 %.2f×  events/s %.2f\n", q.P50, q.P99, q.Rate)
			fmt.Fprintf(w, "  relay ÷ (floor+verify): p50 %.2f×  p99 %.2f×  events/s %.2f\n", q.P50Verify, q.P99Verify, q.RateVerify)
		}
		if s.Flood > 0 {
			q := s.Ratios
			fmt.Fprintf(w, "  relay during the flood of %d connections ÷ calm: p50 %.2f×  p99 %.2f×\n", s.Flood, q.FloodP50, q.FloodP99)
		}
		if u := s.Median.Relay.Usage; u != nil {
			fmt.Fprintf(w, "  relay process: %.1f allocations/event, CPU %s/event, peak RSS %s, %d GC cycles\n",
				s.AllocsPerEvent, s.CPUPerEvent.Round(100*time.Nanosecond), mib(s.PeakRSS), u.GCs)
			n := time.Duration(s.Packages)
			fmt.Fprintf(w, "  relay's own view per package (mean): request in to answer %s, of which publishing %s; %.1f packages per batch\n",
				ms(u.Package/n), ms(u.Publish/n), float64(s.Packages)/float64(max(u.Batches, 1)))
			if fv := s.Median.FloorVerify; fv != nil {
				ev := time.Duration(s.Median.Relay.Events)
				fmt.Fprintf(w, "  CPU per event, all processes: floor + verify %s; relay %s (relay process) + %s (load); share %.2f\n",
					(fv.LoadCPU / time.Duration(fv.Events)).Round(100*time.Nanosecond),
					s.CPUPerEvent.Round(100*time.Nanosecond), (s.Median.Relay.LoadCPU / ev).Round(100*time.Nanosecond), s.Ratios.CPUShare)
			}
		}
	}
	if s := r.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak, %s for %s: %d packages (%d events), all 200; relay RSS peak %s, max in the first minute %s, in the last minute %s\n",
			s.Scenario, s.Duration, s.Packages, s.Events, mib(s.PeakRSS), mib(s.FirstRSS), mib(s.LastRSS))
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		for _, t := range r.Targets {
			verdict := "met"
			if !t.OK {
				verdict = "NOT met"
			}
			fmt.Fprintf(w, "  %-72s %8s  %s\n", t.Name, t.Value, verdict)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// targetResult is one of issue 9's targets as this run measured it.
type targetResult struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	OK    bool   `json:"ok"`
}

// evaluate checks the targets the measured scenarios cover.
func evaluate(r *report) []targetResult {
	by := map[string]*scenarioReport{}
	for i := range r.Scenarios {
		by[r.Scenarios[i].Key] = &r.Scenarios[i]
	}
	var out []targetResult
	ratio := func(name string, v, limit float64, atMost bool) {
		ok := v <= limit
		if !atMost {
			ok = v >= limit
		}
		out = append(out, targetResult{Name: name, Value: fmt.Sprintf("%.2f", v), OK: ok})
	}
	if s := by["single-1mib"]; s != nil && s.Floors {
		ratio("one 1 MiB package, p50 ≤ 1.25× floor + verify", s.Ratios.P50Verify, 1.25, true)
		ratio("stretch: one 1 MiB package, p50 ≤ 1.0× floor (no verify)", s.Ratios.P50, 1.0, true)
	}
	if s := by["parallel8-1mib"]; s != nil && s.Floors {
		ratio("8 webhooks, 1 MiB packages: events/s ≥ 0.8× floor", s.Ratios.Rate, 0.8, false)
		ratio("8 webhooks, 1 MiB packages: events/s ≥ 0.8× floor + verify", s.Ratios.RateVerify, 0.8, false)
	}
	if s := by["parallel16-20"]; s != nil && s.Floors {
		ratio("16 webhooks, 20-event packages: events/s ≥ 0.8× floor + verify", s.Ratios.RateVerify, 0.8, false)
		ratio("16 webhooks, 20-event packages: p99 ≤ 2× floor + verify", s.Ratios.P99Verify, 2, true)
	}
	const rssLimit = 128 << 20
	if s := by["concurrent32-1mib"]; s != nil && s.PeakRSS > 0 {
		out = append(out, targetResult{Name: "32 concurrent 1 MiB packages, all 200: relay peak RSS ≤ 128 MiB", Value: mib(s.PeakRSS), OK: s.PeakRSS <= rssLimit})
	}
	if s := by["flood200-20"]; s != nil && s.Median.Calm != nil {
		ratio("200 stalling strangers: valid deliveries' p50 ≤ 1.25× calm", s.Ratios.FloodP50, 1.25, true)
		if s.PeakRSS > 0 {
			out = append(out, targetResult{Name: "200 stalling strangers: relay peak RSS ≤ 256 MiB", Value: mib(s.PeakRSS), OK: s.PeakRSS <= 256<<20})
		}
	}
	if s := r.Soak; s != nil {
		out = append(out, targetResult{Name: fmt.Sprintf("soak %s: peak RSS ≤ 128 MiB", s.Duration), Value: mib(s.PeakRSS), OK: s.PeakRSS <= rssLimit})
		out = append(out, targetResult{Name: "soak: flat (last minute's max ≤ 1.1× the first minute's)",
			Value: fmt.Sprintf("%.2f", float64(s.LastRSS)/float64(max(s.FirstRSS, 1))), OK: float64(s.LastRSS) <= 1.1*float64(s.FirstRSS)})
	}
	return out
}
