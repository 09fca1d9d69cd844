package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"

	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/subjects"
)

// liveView is relay demo's terminal display. It is a real downstream
// consumer: it subscribes to the relay's subjects on NATS and counts what
// arrives, and reads the relay's own Prometheus metrics for the rest.
type liveView struct {
	out     io.Writer
	redraw  bool
	cfg     config.Config
	emuURL  string
	logPath string

	mu        sync.Mutex
	total     int
	bySubject map[string]int
	last      []seenEvent
	window    []time.Time // arrival times within the last rateWindow
}

type seenEvent struct {
	at      time.Time
	subject string
	ceType  string
	subj    string
}

const (
	rateWindow = 5 * time.Second
	lastShown  = 8
)

func newLiveView(out io.Writer, plain bool, cfg config.Config, emuURL, logPath string) *liveView {
	return &liveView{
		out:       out,
		redraw:    !plain && isTerminal(out),
		cfg:       cfg,
		emuURL:    emuURL,
		logPath:   logPath,
		bySubject: map[string]int{},
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run subscribes to every subject under the prefix and renders until ctx
// ends.
func (v *liveView) run(ctx context.Context, a *service.Service) error {
	sub, err := a.Conn().Subscribe(subjects.Stream(v.cfg.SubjectPrefix), v.observe)
	if err != nil {
		return fmt.Errorf("live view: %w", err)
	}
	defer sub.Unsubscribe()
	v.intro(a)
	every := time.Second
	if !v.redraw {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			v.render(a)
		}
	}
}

func (v *liveView) observe(m *nats.Msg) {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.total++
	v.bySubject[m.Subject]++
	v.window = append(v.window, now)
	v.last = append(v.last, seenEvent{at: now, subject: m.Subject, ceType: m.Header.Get("ce-type"), subj: m.Header.Get("ce-subject")})
	if len(v.last) > lastShown {
		v.last = v.last[len(v.last)-lastShown:]
	}
}

// intro prints, in the plain view, what runs where, in lines that fit
// 100 columns.
func (v *liveView) intro(a *service.Service) {
	if v.redraw {
		return
	}
	subj := subjects.Stream(v.cfg.SubjectPrefix)
	fmt.Fprintf(v.out, "upvest-relay demo (Ctrl-C stops)\n")
	fmt.Fprintf(v.out, "  Upvest emulator  %s\n", v.emuURL)
	fmt.Fprintf(v.out, "  relay ingress    http://%s%s\n", local(a.IngressAddr()), v.cfg.WebhookPath)
	fmt.Fprintf(v.out, "  relay admin      http://%s/readyz and /metrics\n", local(a.AdminAddr()))
	fmt.Fprintf(v.out, "  NATS JetStream   %s, stream %s, subjects %s\n", a.NATSURL(), v.cfg.Stream, subj)
	fmt.Fprintf(v.out, "                   watch: nats sub --server %s '%s'\n", a.NATSURL(), subj)
	fmt.Fprintf(v.out, "  log              %s\n", v.logPath)
}

// snapshot returns the counters and prunes the rate window.
func (v *liveView) snapshot() (total int, rate float64, by map[string]int, last []seenEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	cut := time.Now().Add(-rateWindow)
	i := 0
	for i < len(v.window) && v.window[i].Before(cut) {
		i++
	}
	v.window = v.window[i:]
	return v.total, float64(len(v.window)) / rateWindow.Seconds(), maps.Clone(v.bySubject), slices.Clone(v.last)
}

func (v *liveView) render(a *service.Service) {
	total, rate, by, last := v.snapshot()
	m := gatherCounters(a)
	if !v.redraw {
		// Two lines, each within plainWidth columns.
		fmt.Fprintln(v.out, fit(fmt.Sprintf("%s  events %d (%.1f/s)  packages %d  duplicates %d  dead letters %d  refused %d %s",
			time.Now().Format("15:04:05"), total, rate, int(m["packages:ok"]), int(m["dedup"]), int(m["deadletter"]),
			int(m["rejected"]), rejectionDetail(m))))
		fmt.Fprintln(v.out, fit("  subscription "+v.subscription(a)))
		return
	}
	var b strings.Builder
	b.WriteString("\033[H\033[2J")
	fmt.Fprintf(&b, "upvest-relay demo                                              Ctrl-C to stop\n\n")
	fmt.Fprintf(&b, "  Upvest emulator  %s  (signs packages like Upvest; retries until the relay answers 200)\n", v.emuURL)
	fmt.Fprintf(&b, "  Relay ingress    http://%s%s\n", local(a.IngressAddr()), v.cfg.WebhookPath)
	fmt.Fprintf(&b, "  Relay admin      http://%s/readyz  /metrics\n", local(a.AdminAddr()))
	fmt.Fprintf(&b, "  NATS JetStream   %s  stream %s, subjects %s\n", a.NATSURL(), v.cfg.Stream, subjects.Stream(v.cfg.SubjectPrefix))
	fmt.Fprintf(&b, "                   (try: nats sub --server %s '%s')\n", a.NATSURL(), subjects.Stream(v.cfg.SubjectPrefix))
	fmt.Fprintf(&b, "  Subscription     %s\n", v.subscription(a))
	fmt.Fprintf(&b, "  Log              %s\n\n", v.logPath)

	fmt.Fprintf(&b, "  Events seen on NATS  %d   (%.1f/s)\n", total, rate)
	fmt.Fprintf(&b, "  Packages stored      %d   duplicates ignored %d   dead-lettered %d\n", int(m["packages:ok"]), int(m["dedup"]), int(m["deadletter"]))
	fmt.Fprintf(&b, "  Requests refused     %d   %s\n", int(m["rejected"]), rejectionDetail(m))
	b.WriteString("                       (the demo sends a forged, unsigned package now and then: the relay must refuse it)\n\n")

	b.WriteString("  Subject                                   events\n")
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		if by[x] != by[y] {
			return by[y] - by[x]
		}
		return strings.Compare(x, y)
	})
	for i, k := range keys {
		if i == 12 {
			fmt.Fprintf(&b, "  … and %d more subjects\n", len(keys)-i)
			break
		}
		fmt.Fprintf(&b, "  %-40s %7d\n", k, by[k])
	}
	b.WriteString("\n  Latest events (time, subject, CloudEvent subject = the object's id)\n")
	for i := len(last) - 1; i >= 0; i-- {
		e := last[i]
		fmt.Fprintf(&b, "  %s  %-38s %s\n", e.at.Format("15:04:05.000"), e.subject, e.subj)
	}
	io.WriteString(v.out, b.String())
}

func (v *liveView) subscription(a *service.Service) string {
	s, ok := a.KeeperState()
	if !ok {
		return "control loop off"
	}
	switch {
	case s.WebhookID == "":
		if s.LastError != "" {
			return "not registered yet: " + s.LastError
		}
		return "registering…"
	case s.Enabled && s.InSync:
		msg := "enabled, in sync"
		if s.TestDelivery != "" {
			msg += "; test delivery " + s.TestDelivery
		}
		return msg + "; id " + s.WebhookID
	case s.Enabled:
		return "enabled; id " + s.WebhookID
	default:
		return "disabled: the control loop re-enables it; id " + s.WebhookID
	}
}

// local is addr as a URL host on this machine: a listener on every
// interface (":8080", "[::]:8080") is reached at 127.0.0.1.
func local(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// plainWidth is the width the plain view's status lines fit in.
const plainWidth = 100

// fit cuts s to plainWidth characters, marking a cut with "…".
func fit(s string) string {
	r := []rune(s)
	if len(r) <= plainWidth {
		return s
	}
	return string(r[:plainWidth-1]) + "…"
}

// final prints, after Ctrl-C, the plain view's last status and a one-line
// summary.
func (v *liveView) final(a *service.Service) {
	if !v.redraw {
		v.render(a) // the plain view's last status
	}
	total, _, by, _ := v.snapshot()
	fmt.Fprintf(v.out, "\nstopped: %d events seen on %d subjects; they stay in the stream (relay replay --since 1h)\n", total, len(by))
}

// gatherCounters reads the relay's counters from its registry into a flat
// map: "packages:<result>", "dedup", "deadletter", "rejected" and
// "rejected:<reason>".
func gatherCounters(a *service.Service) map[string]float64 {
	out := map[string]float64{}
	mfs, err := a.Gatherer().Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			val := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "relay_packages_total":
				out["packages:"+label(m, "result")] += val
			case "relay_events_deduplicated_total":
				out["dedup"] += val
			case "relay_events_deadlettered_total":
				out["deadletter"] += val
			case "relay_rejections_total":
				out["rejected"] += val
				out["rejected:"+label(m, "reason")] += val
			}
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func rejectionDetail(m map[string]float64) string {
	var parts []string
	for k, n := range m {
		if r, ok := strings.CutPrefix(k, "rejected:"); ok && n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, int(n)))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
