package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/deadletter"
)

// deadlettersCommands are relay deadletters' subcommands.
var deadlettersCommands = []struct{ name, args, summary string }{
	{"list", "", "list dead letters: sequence, storage time, reason, payload index, request id, size"},
	{"show", " SEQ", "print one dead letter's headers and raw bytes"},
	{"redrive", " [SEQ...]", "run dead letters through the current splitter and publish what now parses"},
}

func runDeadletters(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			deadlettersUsage(stdout)
			return errHelp
		}
		return usageError{errors.New("relay deadletters: which one: list, show SEQ or redrive? (see relay deadletters --help)")}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		return runDeadlettersList(ctx, rest, env, stdout, stderr)
	case "show":
		return runDeadlettersShow(ctx, rest, env, stdout, stderr)
	case "redrive":
		return runDeadlettersRedrive(ctx, rest, env, stdout, stderr)
	case "help":
		deadlettersUsage(stdout)
		return errHelp
	default:
		best, bestD := "", 3
		for _, c := range deadlettersCommands {
			if d := editDistance(sub, c.name); d < bestD {
				best, bestD = c.name, d
			}
		}
		hint := ""
		if best != "" {
			hint = " did you mean " + best + "?"
		}
		return usageError{fmt.Errorf("relay deadletters: unknown subcommand %q:%s (see relay deadletters --help)", sub, hint)}
	}
}

func deadlettersUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: relay deadletters <list|show SEQ|redrive> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Dead letters are the validly signed bodies that were not a package, and the")
	fmt.Fprintln(w, "package elements that were not an event, stored on <RELAY_SUBJECT_PREFIX>._deadletter.")
	fmt.Fprintln(w)
	for _, c := range deadlettersCommands {
		fmt.Fprintf(w, "  %-18s %s\n", c.name+c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'relay deadletters <subcommand> --help' for its flags.")
}

// openDeadletters loads the configuration, connects like replay does and
// returns the dead-letter store; stop closes the connection.
func openDeadletters(ctx context.Context, env []string, stderr io.Writer) (*deadletter.Store, func(), error) {
	cfg, err := config.FromEnviron(env)
	if err != nil {
		return nil, nil, usageError{err}
	}
	log := newLogger(cfg, stderr)
	nc, stop, err := streamConn(ctx, cfg, log, "deadletters")
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		stop()
		return nil, nil, err
	}
	store, err := deadletter.New(js, cfg.Stream, cfg.SubjectPrefix, deadletter.WithSourceBase(cfg.UpvestBaseURL))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return store, stop, nil
}

// parseArgs parses flags and positional arguments in any order and
// returns the positional ones.
func parseArgs(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, errHelp
			}
			return nil, usageError{fmt.Errorf("%s: %w (see %s --help)", fs.Name(), err, fs.Name())}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func parseSeq(s string) (uint64, error) {
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q is not a stream sequence (a positive number, as relay deadletters list shows)", s)
	}
	return seq, nil
}

func runDeadlettersList(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deadletters list", "List dead letters in stream order: sequence, storage time (UTC), reason, position\nin the package's payload (- for a whole body), request id, size in bytes, id.", stdout)
	since := fs.String("since", "", "start: "+whenHelp+" (default: the oldest retained)")
	until := fs.String("until", "", "end, same forms as --since (default: the newest)")
	asJSON := fs.Bool("json", false, "one JSON object per line instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	from, to, err := parseWindow("relay deadletters list", *since, *until, time.Now())
	if err != nil {
		return err
	}
	store, stop, err := openDeadletters(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer stop()

	enc := json.NewEncoder(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "SEQ\tSTORED\tREASON\tINDEX\tREQUEST ID\tSIZE\tID")
	}
	err = store.List(ctx, from, to, func(l deadletter.Letter) error {
		if *asJSON {
			return enc.Encode(letterJSON(l))
		}
		index := "-"
		if l.Index >= 0 {
			index = strconv.Itoa(l.Index)
		}
		_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", l.Seq, stamp(l.Time), orDash(l.Reason), index, orDash(l.RequestID), l.Size, orDash(l.ID))
		return err
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// letterOut is a dead letter in list --json.
type letterOut struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Subject   string    `json:"subject"`
	ID        string    `json:"id"`
	Reason    string    `json:"reason"`
	Index     *int      `json:"index,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Size      int       `json:"size"`
}

func letterJSON(l deadletter.Letter) letterOut {
	o := letterOut{Seq: l.Seq, Time: l.Time.UTC(), Subject: l.Subject, ID: l.ID, Reason: l.Reason, RequestID: l.RequestID, Size: l.Size}
	if l.Index >= 0 {
		o.Index = &l.Index
	}
	return o
}

func runDeadlettersShow(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deadletters show", "Print the dead letter at stream sequence SEQ, the one argument (relay deadletters\nlist shows them): a line with its sequence, storage time, subject and size, its\nheaders (one per line), a blank line and its data, byte for byte as received.", stdout)
	raw := fs.Bool("raw", false, "print only the data, byte for byte")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("relay deadletters show: give one SEQ (see relay deadletters list)")}
	}
	seq, err := parseSeq(pos[0])
	if err != nil {
		return usageError{fmt.Errorf("relay deadletters show: %w", err)}
	}
	store, stop, err := openDeadletters(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer stop()
	l, err := store.Get(ctx, seq)
	if err != nil {
		return err
	}
	if *raw {
		_, err := stdout.Write(l.Data)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# seq %d, stored %s, subject %s, %d bytes\n", l.Seq, stamp(l.Time), l.Subject, l.Size)
	names := make([]string, 0, len(l.Header))
	for name := range l.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range l.Header[name] {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if _, err := stdout.Write(l.Data); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, "\n")
	return err
}

func runDeadlettersRedrive(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deadletters redrive", "Run the selected dead letters through the current splitter and publish the\nevents that now parse, with the headers live events get. Arguments: SEQ... to\nselect those stream sequences (within --since/--until); none selects the window.\nIdempotent: an event already in the stream is not stored again. Dead letters\nstay in the stream, redriven or not; what still fails is reported. Exit 0\nunless something other than a dead letter failed (NATS, a SEQ that is not one).", stdout)
	since := fs.String("since", "", "start: "+whenHelp+" (default: the oldest retained)")
	until := fs.String("until", "", "end, same forms as --since (default: the newest)")
	dryRun := fs.Bool("dry-run", false, "publish nothing; report what a redrive would do")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var sel deadletter.Selection
	if sel.Since, sel.Until, err = parseWindow("relay deadletters redrive", *since, *until, time.Now()); err != nil {
		return err
	}
	for _, p := range pos {
		seq, err := parseSeq(p)
		if err != nil {
			return usageError{fmt.Errorf("relay deadletters redrive: %w", err)}
		}
		sel.Seqs = append(sel.Seqs, seq)
	}
	store, stop, err := openDeadletters(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer stop()
	var opts []deadletter.RedriveOption
	if *dryRun {
		opts = append(opts, deadletter.DryRun())
	}
	report, err := store.Redrive(ctx, sel, opts...)
	if *asJSON {
		if jerr := json.NewEncoder(stdout).Encode(reportJSON(report)); err == nil {
			err = jerr
		}
		return err
	}
	if err != nil && len(report.Results) == 0 {
		return err
	}
	if werr := writeReport(stdout, report); err == nil {
		err = werr
	}
	return err
}

// writeReport prints one line per dead letter and a summary.
func writeReport(w io.Writer, r deadletter.Report) error {
	stored := "stored"
	if r.DryRun {
		stored = "to store"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, res := range r.Results {
		counts := fmt.Sprintf("%d %s, %d already stored", res.Stored, stored, res.Duplicates)
		var outcome string
		switch {
		case res.Err == nil:
			outcome = "redriven: " + counts
		case res.Events == 0:
			outcome = "still fails: " + errLine(res.Err)
		default:
			outcome = "partly redriven: " + counts + "; still fails: " + errLine(res.Err)
		}
		fmt.Fprintf(tw, "seq %d\t%s\t%s\n", res.Letter.Seq, orDash(res.Letter.Reason), outcome)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "redrive"
	if r.DryRun {
		verb = "redrive --dry-run"
	}
	_, err := fmt.Fprintf(w, "%s: %d dead letters: %d events %s, %d duplicates (already stored), %d dead letters still failing (left in place)\n",
		verb, len(r.Results), r.Stored, stored, r.Duplicates, r.StillFailing)
	return err
}

// reportOut is the report in redrive --json.
type reportOut struct {
	DryRun       bool        `json:"dry_run"`
	Stored       int         `json:"stored"`
	Duplicates   int         `json:"duplicates"`
	StillFailing int         `json:"still_failing"`
	DeadLetters  []resultOut `json:"deadletters"`
}

type resultOut struct {
	letterOut
	Events     int    `json:"events"`
	Stored     int    `json:"stored"`
	Duplicates int    `json:"duplicates"`
	Error      string `json:"error,omitempty"`
}

func reportJSON(r deadletter.Report) reportOut {
	o := reportOut{DryRun: r.DryRun, Stored: r.Stored, Duplicates: r.Duplicates, StillFailing: r.StillFailing, DeadLetters: []resultOut{}}
	for _, res := range r.Results {
		ro := resultOut{letterOut: letterJSON(res.Letter), Events: res.Events, Stored: res.Stored, Duplicates: res.Duplicates}
		if res.Err != nil {
			ro.Error = errLine(res.Err)
		}
		o.DeadLetters = append(o.DeadLetters, ro)
	}
	return o
}

// errLine is err on one line, joined errors separated by "; ".
func errLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// stamp renders a storage time in UTC to the millisecond.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
