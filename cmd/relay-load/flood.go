package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// floodPause is how long a flooding connection waits, once the relay has
// closed it, before it connects again (as an attacker would).
const floodPause = time.Second

// flood opens n connections to the relay that cannot prove they come from
// Upvest and keeps them open for as long as the relay lets them, each
// reconnecting when closed, until stop is called: half send a request head
// without a signature that announces a 100 000-byte body and send none of
// it; half replay a validly signed head of a package (a copy of a real
// delivery) and send half its body, then stall. It returns once every
// connection has been opened.
func (l *loader) flood(ctx context.Context, n int, tmpl *template) (stop func(), err error) {
	p := tmpl.instance(false)
	if err := sign(l.emu, p); err != nil {
		return nil, err
	}
	addr := l.target.ingressAddr()
	unsigned := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", webhookPath, addr)
	var replayed bytes.Buffer
	fmt.Fprintf(&replayed, "POST %s HTTP/1.1\r\nHost: %s\r\n", webhookPath, addr)
	for k, vs := range p.header {
		for _, v := range vs {
			fmt.Fprintf(&replayed, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&replayed, "Content-Length: %d\r\n\r\n", len(p.body))
	replayed.Write(p.body[:len(p.body)/2])

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	opened := make(chan error, n)
	for i := range n {
		send := unsigned
		if i%2 == 1 {
			send = replayed.Bytes()
		}
		wg.Go(func() {
			var once sync.Once
			for ctx.Err() == nil {
				stall(ctx, addr, send, func(err error) { once.Do(func() { opened <- err }) })
				select {
				case <-ctx.Done():
				case <-time.After(floodPause):
				}
			}
		})
	}
	stop = func() { cancel(); wg.Wait() }
	for range n {
		if err := <-opened; err != nil {
			stop()
			return nil, fmt.Errorf("flood: %w", err)
		}
	}
	return stop, nil
}

// stall connects to addr, writes send, tells written how that went, and
// holds the connection until the relay closes it or ctx ends.
func stall(ctx context.Context, addr string, send []byte, written func(error)) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		written(err)
		return
	}
	defer c.Close()
	if _, err := c.Write(send); err != nil {
		written(err)
		return
	}
	written(nil)
	stopClosing := context.AfterFunc(ctx, func() { c.Close() })
	defer stopClosing()
	// Whatever the relay answers (a 401, a 400 once the body's deadline
	// passes), read until it closes the connection.
	_, _ = io.Copy(io.Discard, c)
}
