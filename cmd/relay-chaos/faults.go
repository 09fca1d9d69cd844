package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// env is what a fault acts on.
type env struct {
	nodes  []*node
	relays []*relayProc
	js     jetstream.JetStream
	stream string
	d      *deliverer
	gen    *emulator.Generator
	log    io.Writer
}

// fault is one phase of the campaign: inject acts at the start of the
// phase's fault window and returns once the fault is over (the processes
// it stopped are running again).
type fault struct {
	name    string
	minimum time.Duration // the shortest phase this fault fits in
	inject  func(ctx context.Context, e *env) error
}

func allFaults() []fault {
	return []fault{
		{"none", 0, func(context.Context, *env) error { return nil }},
		{"relay SIGKILL", 10 * time.Second, func(ctx context.Context, e *env) error {
			return restartRelays(ctx, e, e.relays[:1], 2*time.Second)
		}},
		{"both relays SIGKILL", 10 * time.Second, func(ctx context.Context, e *env) error {
			return restartRelays(ctx, e, e.relays, 2*time.Second)
		}},
		{"relay SIGKILL mid-package", 10 * time.Second, killMidPackage},
		{"stream leader SIGKILL", 25 * time.Second, func(ctx context.Context, e *env) error {
			n, err := streamNode(ctx, e, true)
			if err != nil {
				return err
			}
			return restartNode(ctx, e, n, 10*time.Second)
		}},
		{"stream follower SIGKILL", 25 * time.Second, func(ctx context.Context, e *env) error {
			n, err := streamNode(ctx, e, false)
			if err != nil {
				return err
			}
			return restartNode(ctx, e, n, 10*time.Second)
		}},
		{"attached node SIGSTOP 10s", 20 * time.Second, func(ctx context.Context, e *env) error {
			return freezeAttached(ctx, e, 10*time.Second)
		}},
		{"attached node SIGSTOP 40s", 50 * time.Second, func(ctx context.Context, e *env) error {
			return freezeAttached(ctx, e, 40*time.Second)
		}},
		{"stream leader SIGSTOP 10s", 20 * time.Second, func(ctx context.Context, e *env) error {
			n, err := streamNode(ctx, e, true)
			if err != nil {
				return err
			}
			return freeze(ctx, e, n, 10*time.Second)
		}},
	}
}

func faultNames() string {
	var names []string
	for _, f := range allFaults() {
		names = append(names, strings.ReplaceAll(f.name, " ", "-"))
	}
	return strings.Join(names, ",")
}

// selectFaults returns the faults named in list (dash-separated names as
// faultNames prints them), or all of them for an empty list.
func selectFaults(list string) ([]fault, error) {
	all := allFaults()
	if list == "" {
		return all, nil
	}
	var out []fault
	for _, want := range strings.Split(list, ",") {
		i := slices.IndexFunc(all, func(f fault) bool { return strings.ReplaceAll(f.name, " ", "-") == strings.TrimSpace(want) })
		if i < 0 {
			return nil, fmt.Errorf("unknown fault %q (known: %s)", want, faultNames())
		}
		out = append(out, all[i])
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func restartRelays(ctx context.Context, e *env, rs []*relayProc, down time.Duration) error {
	for _, r := range rs {
		r.kill()
		fmt.Fprintf(e.log, "  killed %s\n", r.name)
	}
	if err := sleep(ctx, down); err != nil {
		return err
	}
	for _, r := range rs {
		if err := r.start(); err != nil {
			return err
		}
	}
	return nil
}

// killMidPackage sends a 1000-event package and kills the relay replica
// that receives the first attempt while it is storing it; the package is
// then retried like any other until it is answered 200.
func killMidPackage(ctx context.Context, e *env) error {
	ids, body, err := makePackage(e.gen, "mid-package-kill", 1000)
	if err != nil {
		return err
	}
	first := e.relays[(e.d.next.Load()+1)%uint64(len(e.relays))]
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.d.deliver(ctx, ids, body, func() { first.kill(); fmt.Fprintf(e.log, "  killed %s mid-package\n", first.name) })
	}()
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if err := first.start(); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamNode returns the node leading the stream, or a follower.
func streamNode(ctx context.Context, e *env, leader bool) (*node, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return nil, errors.Join(errors.New("stream info has no cluster"), err)
	}
	name := info.Cluster.Leader
	if !leader {
		if len(info.Cluster.Replicas) == 0 {
			return nil, errors.New("stream has no followers")
		}
		name = info.Cluster.Replicas[0].Name
	}
	for _, n := range e.nodes {
		if n.serverName == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node named %q", name)
}

func restartNode(ctx context.Context, e *env, n *node, down time.Duration) error {
	n.kill()
	fmt.Fprintf(e.log, "  killed %s\n", n.serverName)
	if err := sleep(ctx, down); err != nil {
		return err
	}
	return n.start()
}

func freeze(ctx context.Context, e *env, n *node, d time.Duration) error {
	n.signal(syscall.SIGSTOP)
	fmt.Fprintf(e.log, "  froze %s for %s\n", n.serverName, d)
	err := sleep(ctx, d)
	n.signal(syscall.SIGCONT)
	return err
}

// freezeAttached freezes the node the first relay replica is connected to.
func freezeAttached(ctx context.Context, e *env, d time.Duration) error {
	ports := make([]int, len(e.nodes))
	for i, n := range e.nodes {
		ports[i] = n.clientPort
	}
	port := attachedPort(e.relays[0].pid(), ports)
	for _, n := range e.nodes {
		if n.clientPort == port {
			return freeze(ctx, e, n, d)
		}
	}
	return fmt.Errorf("cannot tell which node %s is attached to", e.relays[0].name)
}
