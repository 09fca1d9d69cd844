package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

type options struct {
	RelayBin, NATSBin string
	Duration          time.Duration
	Webhooks, Events  int
	Pause             time.Duration
	Faults            string
	JSON, Keep        bool
}

// row is one fault's result.
type row struct {
	Fault      string  `json:"fault"`
	Packages   int     `json:"packages"`
	Unfinished int     `json:"unfinished"` // never answered 200 by the end
	Sent       int     `json:"events_sent"`
	Stored     int     `json:"events_stored"`
	Lost       int     `json:"events_lost"`
	Duplicated int     `json:"events_duplicated"`
	OutOfOrder int     `json:"packages_out_of_order"`
	MaxWaitS   float64 `json:"longest_wait_s"`
	Error      string  `json:"error,omitempty"`
}

// OK reports whether the relay kept its guarantees in this phase.
func (r row) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.Unfinished == 0 && r.Error == ""
}

const streamName = "UPVEST"

func campaign(ctx context.Context, o options, log io.Writer) ([]row, error) {
	faults, err := selectFaults(o.Faults)
	if err != nil {
		return nil, err
	}
	for _, bin := range []string{o.RelayBin, o.NATSBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w (run make chaos, which builds it)", err)
		}
	}
	phase := o.Duration / time.Duration(len(faults))

	dir, err := os.MkdirTemp("", "relay-chaos-")
	if err != nil {
		return nil, err
	}
	if o.Keep {
		fmt.Fprintln(log, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	emu, err := emulator.New()
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	jwks, err := emu.JWKS()
	if err != nil {
		return nil, err
	}
	keysFile := filepath.Join(dir, "verify_keys.json")
	if err := os.WriteFile(keysFile, jwks, 0o600); err != nil {
		return nil, err
	}

	fmt.Fprintln(log, "starting a 3-node nats-server cluster")
	nodes, err := startCluster(o.NATSBin, dir)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop(10 * time.Second)
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	var relays []*relayProc
	defer func() {
		for _, r := range relays {
			r.stop(30 * time.Second)
		}
	}()
	fmt.Fprintln(log, "starting two relay replicas")
	for i, name := range []string{"relay-a", "relay-b"} {
		order := append(append([]string{}, urls[i:]...), urls[:i]...)
		r, err := startRelay(o.RelayBin, dir, name, strings.Join(order, ","), keysFile)
		if r != nil {
			relays = append(relays, r)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, r := range relays {
		if err := r.waitReady(ctx, 2*time.Minute); err != nil {
			return nil, fmt.Errorf("%s not ready (see %s): %w", r.name, r.log, err)
		}
	}

	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	l := &ledger{}
	d := &deliverer{
		sign:   emu.SignDelivery,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		ledger: l,
	}
	for _, r := range relays {
		d.targets = append(d.targets, r.webhookURL())
	}
	e := &env{nodes: nodes, relays: relays, js: js, stream: streamName, d: d, gen: emulator.NewGenerator(99), log: log}

	produce, stopProducing := context.WithCancel(ctx)
	deliver, stopDelivering := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivering()
	var wg sync.WaitGroup
	for i := range o.Webhooks {
		gen := emulator.NewGenerator(uint64(i + 1))
		wg.Go(func() { sendLoop(produce, deliver, d, gen, o.Events, o.Pause) })
	}

	errs := make([]string, len(faults))
	for i, f := range faults {
		l.phase.Store(int32(i))
		length := max(phase, f.minimum+10*time.Second)
		fmt.Fprintf(log, "phase %d/%d: %s (%s)\n", i+1, len(faults), f.name, length.Round(time.Second))
		start := time.Now()
		if err := sleep(ctx, length/5); err != nil {
			break
		}
		if err := f.inject(ctx, e); err != nil {
			errs[i] = err.Error()
			fmt.Fprintf(log, "  fault failed: %v\n", err)
		}
		// Let everything come back before the next fault.
		for _, r := range relays {
			if err := r.waitReady(ctx, 2*time.Minute); err != nil {
				errs[i] = fmt.Sprintf("%s not ready after the fault: %v", r.name, err)
			}
		}
		if err := sleep(ctx, length-time.Since(start)); err != nil {
			break
		}
	}
	stopProducing()
	fmt.Fprintln(log, "draining the packages in flight")
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Minute):
		stopDelivering()
		<-drained
	}

	fmt.Fprintln(log, "reading the stream back")
	stored, err := readStream(js)
	if err != nil {
		return nil, err
	}
	return tally(faults, errs, l.snapshot(), stored), nil
}

// readStream returns, per Nats-Msg-Id, the stream sequences it is stored at.
func readStream(js jetstream.JetStream) (map[string][]uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	out := make(map[string][]uint64, info.State.Msgs)
	if info.State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			id := m.Headers().Get("Nats-Msg-Id")
			out[id] = append(out[id], meta.Sequence.Stream)
			if meta.Sequence.Stream >= last {
				return out, nil
			}
		}
		if n == 0 {
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return nil, fmt.Errorf("stream read stopped before sequence %d: %w", last, err)
			}
		}
	}
}

// tally books every package into its phase's row.
func tally(faults []fault, errs []string, pkgs []pkg, stored map[string][]uint64) []row {
	rows := make([]row, len(faults))
	for i, f := range faults {
		rows[i] = row{Fault: f.name, Error: errs[i]}
	}
	for _, p := range pkgs {
		r := &rows[p.phase]
		r.Packages++
		if p.done.IsZero() {
			r.Unfinished++
			continue
		}
		r.Sent += len(p.ids)
		r.MaxWaitS = max(r.MaxWaitS, p.done.Sub(p.first).Seconds())
		var prev uint64
		ordered := true
		for _, id := range p.ids {
			seqs := stored[id]
			switch {
			case len(seqs) == 0:
				r.Lost++
				continue
			case len(seqs) > 1:
				r.Duplicated += len(seqs) - 1
			}
			r.Stored++
			if seqs[0] < prev {
				ordered = false
			}
			prev = seqs[0]
		}
		if !ordered {
			r.OutOfOrder++
		}
	}
	return rows
}

func writeTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tpackages\tevents sent\tstored\tlost\tduplicated\tout of order\tunfinished\tlongest wait for 200\t")
	for _, r := range rows {
		fault := r.Fault
		if r.Error != "" {
			fault += " (error: " + r.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f s\t\n",
			fault, r.Packages, r.Sent, r.Stored, r.Lost, r.Duplicated, r.OutOfOrder, r.Unfinished, r.MaxWaitS)
	}
	tw.Flush()
}

func writeJSON(w io.Writer, rows []row, err error) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if e := enc.Encode(rows); e != nil {
		return errors.Join(err, e)
	}
	return err
}
