package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp means help was asked for and printed: exit 0.
var errHelp = errors.New("help")

// flagSet is a subcommand's flags plus the help text printed for --help.
type flagSet struct {
	*flag.FlagSet
	summary string
	extra   string // printed after the flags, e.g. the RELAY_* variables
	out     io.Writer
}

func newFlagSet(name, summary string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet("relay "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, summary: summary, out: out}
}

func (fs *flagSet) help() {
	fmt.Fprintf(fs.out, "Usage: %s [flags]\n\n%s\n", fs.Name(), fs.summary)
	if hasFlags(fs.FlagSet) {
		fmt.Fprintln(fs.out, "\nFlags:")
		fs.SetOutput(fs.out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if fs.extra != "" {
		fmt.Fprintln(fs.out)
		fmt.Fprint(fs.out, fs.extra)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args, mapping -h/--help to errHelp and mistakes to
// errUsage. Positional arguments are refused.
func parseFlags(fs *flagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.help()
			return errHelp
		}
		return usageError{fmt.Errorf("%s: %w (see %s --help)", fs.Name(), err, fs.Name())}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q (see %s --help)", fs.Name(), fs.Arg(0), fs.Name())}
	}
	return nil
}

// oneLine flattens an error message onto a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}
