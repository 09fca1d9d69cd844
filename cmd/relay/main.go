// Command relay runs upvest-relay: it verifies signed Upvest webhook
// packages, publishes every event as a CloudEvent to NATS JetStream, and
// keeps the tenant's webhook subscription registered.
//
// Usage:
//
//	relay [serve]    run the relay (configured by RELAY_* variables)
//	relay demo       the whole system on one machine, nothing configured
//	relay replay     read events back from stream retention
//	relay deadletters  list, show and redrive dead letters
//	relay check      diagnose the configuration, end to end
//	relay keys       print Upvest's verification keys as a JWKS file
//	relay version    print the version (also relay --version, -v)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a command-line or configuration mistake: printed as one
// line on stderr, exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// command is one subcommand of relay.
type command struct {
	name    string
	summary string
	// run runs the command with its arguments and the process
	// environment, as os.Environ returns it (the RELAY_* configuration).
	run func(ctx context.Context, args, env []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the relay: webhook ingress and subscription control loop (default)", runServe},
		{"demo", "run embedded JetStream, an Upvest emulator and the relay, with a live view", runDemo},
		{"replay", "print or republish events from stream retention", runReplay},
		{"deadletters", "list, show (SEQ) or redrive dead letters", runDeadletters},
		{"check", "diagnose the configuration: NATS, stream, Upvest, keys, subscription", runCheck},
		{"keys", "print Upvest's verification keys, ready for RELAY_VERIFY_KEYS_FILE", runKeys},
		{"version", "print the version", runVersion},
	}
}

// run executes the command line and returns the process exit code:
// 0 on a clean stop or help, 2 for usage and configuration errors, 1 for
// everything else.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		switch a := args[0]; a {
		case "-h", "-help", "--help", "help":
			usage(stdout)
			return 0
		case "-v", "-version", "--version":
			name, args = "version", args[1:]
		default:
			if len(a) > 0 && a[0] != '-' {
				name, args = a, args[1:]
			}
		}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args, env, stdout, stderr)
		var ue usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintln(stderr, oneLine(err))
			return 2
		default:
			fmt.Fprintln(stderr, "relay "+name+": "+oneLine(err))
			return 1
		}
	}
	if near := suggest(name); near != "" {
		fmt.Fprintf(stderr, "relay: unknown command %q: did you mean %s? (try relay --help)\n", name, near)
	} else {
		fmt.Fprintf(stderr, "relay: unknown command %q (try relay --help)\n", name)
	}
	return 2
}

// suggest returns the command closest to name when it is a likely typo
// (an edit distance of at most 2, or a prefix), else "".
func suggest(name string) string {
	best, bestD := "", 3
	for _, c := range commands() {
		d := editDistance(name, c.name)
		if len(name) >= 2 && strings.HasPrefix(c.name, name) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: relay [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'relay <command> --help' for a command's flags and variables.")
}

func runVersion(_ context.Context, args, _ []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", "print the version", stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "relay", version)
	return nil
}
