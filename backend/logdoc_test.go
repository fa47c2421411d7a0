package backend_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLoggingDocListsEveryRecord checks that docs/LOGGING.md lists every
// record the backends write themselves (backend/open.go, backend/redis),
// at the level the code writes it.
func TestLoggingDocListsEveryRecord(t *testing.T) {
	doc, err := os.ReadFile("../docs/LOGGING.md")
	if err != nil {
		t.Fatal(err)
	}
	// Rows of the doc's tables: message cell -> level cell.
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 3 {
			rows[cells[1]] = strings.TrimSpace(cells[2])
		}
	}
	files, err := filepath.Glob("redis/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "open.go")
	call := regexp.MustCompile(`(?:[Ll]ogger\.(Warn|Info|Error|Debug)\(|LogAttrs\(ctx, slog\.Level(Warn|Info|Error|Debug), )"([^"]+)"`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			level, msg := m[1]+m[2], strings.TrimSpace(m[3])
			if msg == "coord/redis:" || strings.HasPrefix(msg, "go-redis") {
				continue // built from parts, or go-redis's own lines
			}
			found++
			ok := false
			for cell, lvl := range rows {
				if strings.Contains(cell, msg) {
					ok = true
					if lvl != level {
						t.Errorf("%s: %q is logged at %s; docs/LOGGING.md says %s", f, msg, level, lvl)
					}
				}
			}
			if !ok {
				t.Errorf("%s: record %q (%s) is not in docs/LOGGING.md", f, msg, level)
			}
		}
	}
	if found < 10 {
		t.Errorf("found %d log calls; the pattern no longer matches the code", found)
	}
}
