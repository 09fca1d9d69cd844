//go:build linux

package relay

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cpuOf is the user plus system CPU time this process and process pid
// have used (the kernel counts the other in clock ticks of 10 ms).
func cpuOf(b *testing.B, pid int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("CPU time of the server process: %v", err)
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th of the whole line.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("unexpected /proc/%d/stat: %s", pid, stat)
	}
	return self + time.Duration(utime+stime)*10*time.Millisecond
}

// BenchmarkPublishCPU is the CPU one package costs the relay's process
// and the JetStream server's together, one package at a time: "async"
// is the floor the load command measures against (every message with
// PublishMsgAsync, then every PubAck; the messages copied, since the
// builder reuses one), "batch" the relay's ordered fast-ingest batch.
// Both parse the package and build its headers. The difference is what
// keeping a package in order costs: the batch's acknowledgement
// subscription, its first-message round trip and the server's batch
// bookkeeping.
//
// "grouped-16" is 16 such packages waiting together while a batch is in
// flight, as with many webhooks at once, and so sharing the next batch
// (the figure is per package).
func BenchmarkPublishCPU(b *testing.B) {
	for _, n := range []int{20, 1000} {
		for _, mode := range []string{"async", "batch", "grouped-16"} {
			if mode == "grouped-16" && n >= groupMaxPackage {
				continue
			}
			b.Run(fmt.Sprintf("events=%d/%s", n, mode), func(b *testing.B) {
				h, pid := externalJetStreamProcess(b)
				js := h.pub.(jetstream.JetStream)
				run := 0
				packages := 1
				cpu0 := cpuOf(b, pid)
				for b.Loop() {
					if mode == "grouped-16" {
						packages = 16
						publishGrouped(b, h, benchPackages(packages, n, &run), n)
						continue
					}
					run++
					p, out := h.messages(BenchPackage(n, run), "req")
					if mode == "batch" {
						if err := h.publish(context.Background(), p, &out); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if err := publishAsync(js, p); err != nil {
						b.Fatal(err)
					}
				}
				cpu := cpuOf(b, pid) - cpu0
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*packages), "cpu-µs/package")
			})
		}
	}
}

// publishAsync publishes every message of p with PublishMsgAsync and
// waits for every PubAck.
func publishAsync(js jetstream.JetStream, p *publication) error {
	futures := make([]jetstream.PubAckFuture, p.len())
	for i := range futures {
		m, _ := p.msg(i)
		c := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: make(nats.Header, len(m.Header))}
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
		f, err := js.PublishMsgAsync(c)
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		}
	}
	return nil
}
