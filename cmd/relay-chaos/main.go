// Command relay-chaos is the relay's fault campaign: it runs a 3-node
// nats-server cluster and two relay replicas as separate processes on
// loopback, drives Upvest-like senders at them, injects faults one phase at a
// time and prints, per fault, how many events were sent, stored, lost and
// duplicated, how many packages were stored out of package order, and the
// longest any package waited for its 200.
//
// Senders behave as Upvest does: one package in flight per webhook, the same
// package retried (re-signed each attempt) until it is answered 200, every
// attempt to either replica as a load balancer would. The campaign's
// guarantees are the relay's: 0 lost, 0 duplicated, 0 packages out of order.
//
// It needs a built relay binary and a nats-server binary; `make chaos` builds
// and installs both. Everything it starts is on 127.0.0.1 and is stopped when
// it ends; the exit code is 0 only when no event was lost or duplicated and
// no package was stored out of order.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() { os.Exit(cli()) }

func cli() int {
	var o options
	flag.StringVar(&o.RelayBin, "relay", "bin/relay", "relay binary")
	flag.StringVar(&o.NATSBin, "nats-server", "bin/tools/nats-server", "nats-server binary")
	flag.DurationVar(&o.Duration, "duration", 10*time.Minute, "whole campaign; split evenly over the faults")
	flag.IntVar(&o.Webhooks, "webhooks", 4, "concurrent Upvest-like senders (one package in flight each)")
	flag.IntVar(&o.Events, "events", 20, "events per ordinary package")
	flag.DurationVar(&o.Pause, "pause", 20*time.Millisecond, "pause between a webhook's packages (keeps the stream's size reasonable)")
	flag.StringVar(&o.Faults, "faults", "", "comma-separated subset of faults to run (default all: "+faultNames()+")")
	flag.BoolVar(&o.JSON, "json", false, "print the table as JSON")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory (logs, stores) for inspection")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := campaign(ctx, o, os.Stderr)
	if len(rows) > 0 {
		if o.JSON {
			err = writeJSON(os.Stdout, rows, err)
		} else {
			writeTable(os.Stdout, rows)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-chaos:", err)
		return 1
	}
	for _, r := range rows {
		if !r.OK() {
			return 1
		}
	}
	return 0
}
