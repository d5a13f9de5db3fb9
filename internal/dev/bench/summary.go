package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// summary is everything summary.md reports, gathered before it is written
// so that writing it is a pure function of the run, which a test can check.
type summary struct {
	date                  time.Time
	machine               string // OS, architecture, CPU model and cores
	loadBefore, loadAfter string
	versions              string // Go, Node.js and dynalite
	command               string // the make command that reproduces the run
	rounds                int
	requests              struct{ dynalite, moto string } // Markdown tables; moto's is empty when moto is missing
	indexUnits            string                          // TestIndexWriteUnits's Markdown table
	motoVersion           string
	raw, rawQueries       string // paths of the raw benchmark output
	rawOps, rawPool       string
	// benchstat runs benchstat with args and returns its output.
	benchstat func(args ...string) (string, error)
}

func (s *summary) write(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# ddbtrack benchmark summary\n\n")
	p("- Date: %s\n", s.date.UTC().Format("2006-01-02 15:04 UTC"))
	p("- Machine: %s\n", s.machine)
	p("- Load average (1, 5, 15 min) before: %s; after: %s\n", s.loadBefore, s.loadAfter)
	p("- %s\n", s.versions)
	p("- Command: %s\n", s.command)

	p("\n## Requests per step (dynalite)\n\n%s", s.requests.dynalite)
	if s.requests.moto != "" {
		p("\n## Requests per step (moto %s)\n\n%s", s.motoVersion, s.requests.moto)
	} else {
		p("\n(moto is not installed: the refused claim that returns its item was not measured)\n")
	}
	if s.indexUnits != "" {
		p("\n## Write units of a task's life, index included (computed from item sizes; dynalite reports the table's only)\n\n%s", s.indexUnits)
	}

	if err := s.stat(w, fmt.Sprintf("Benchmarks: medians over %d rounds, with 95%% confidence intervals", s.rounds), s.raw); err != nil {
		return err
	}
	// The overhead table compares ddbtrack with the raw-SDK baseline
	// side by side, which needs BenchmarkLifecycle's /impl sub-benchmarks.
	if fileHasLine(s.raw, "BenchmarkLifecycle/") {
		if err := s.stat(w, "Library CPU per lifecycle in process, through the SDK (client=sdk) and without it (client=canned): ddbtrack vs the raw-SDK baseline", "-filter", ".name:Lifecycle", "-col", "/impl", s.raw); err != nil {
			return err
		}
	}
	if info, err := os.Stat(s.rawQueries); err == nil && info.Size() > 0 {
		if err := s.stat(w, "Queries (one process, 5 counts)", s.rawQueries); err != nil {
			return err
		}
	}
	if info, err := os.Stat(s.rawOps); err == nil && info.Size() > 0 {
		if err := s.stat(w, "Operations on one big job (one process; medians of 5 counts, 3 for count queries)", s.rawOps); err != nil {
			return err
		}
	}
	if info, err := os.Stat(s.rawPool); err == nil && info.Size() > 0 {
		if err := s.stat(w, "Process at scale: fleets, idle cost, due work, big jobs (one process)", s.rawPool); err != nil {
			return err
		}
	}
	return nil
}

// stat writes a section holding benchstat's output for args.
func (s *summary) stat(w io.Writer, title string, args ...string) error {
	out, err := s.benchstat(args...)
	if err != nil {
		return fmt.Errorf("benchstat %s: %w", strings.Join(args, " "), err)
	}
	_, err = fmt.Fprintf(w, "\n## %s\n\n```text\n%s```\n", title, out)
	return err
}

// fileHasLine reports whether a line of the file starts with prefix.
func fileHasLine(name, prefix string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return true
		}
	}
	return false
}

// loadAverage returns the 1, 5 and 15 minute load averages. Benchmarks on a
// shared machine mean little without them.
func loadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
	}
	return strings.TrimSpace(outputOf("uptime"))
}

// machine describes the hardware: uname's system and architecture, the
// CPU model where /proc/cpuinfo says it, and the cores Go may use.
func machine() string {
	parts := []string{strings.TrimSpace(outputOf("uname", "-sm"))}
	if parts[0] == "" {
		parts[0] = runtime.GOOS + " " + runtime.GOARCH
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				parts = append(parts, strings.TrimSpace(value))
				break
			}
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("%d cores", runtime.NumCPU())), ", ")
}

// versions names the toolchain and the server that produced the figures.
func versions() string {
	dynalite := "unknown"
	if b, err := os.ReadFile("node_modules/dynalite/package.json"); err == nil {
		var pkg struct{ Version string }
		if json.Unmarshal(b, &pkg) == nil && pkg.Version != "" {
			dynalite = pkg.Version
		}
	}
	return fmt.Sprintf("%s; node %s; dynalite %s",
		strings.TrimSpace(outputOf("go", "version")), strings.TrimSpace(outputOf("node", "--version")), dynalite)
}
