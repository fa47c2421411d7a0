package metrics_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// describing is a Registerer that records the name of every metric
// registered through it.
type describing struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describing) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describing) Unregister(prometheus.Collector) bool { return true }

// TestDashboardSeriesExist checks that every series the Grafana dashboard
// in deploy/ queries is one the middleware exports.
func TestDashboardSeriesExist(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/coord-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	reg := &describing{names: map[string]bool{}}
	if _, err := metrics.New(reg, nil); err != nil {
		t.Fatal(err)
	}
	if len(reg.names) < 6 {
		t.Fatalf("the middleware described %d series; want at least the Node design's six", len(reg.names))
	}
	used := regexp.MustCompile(`\$\{namespace\}_([a-z_]+)`).FindAllStringSubmatch(string(raw), -1)
	if len(used) < 10 {
		t.Fatalf("dashboard queries %d series; want the dashboard's panels", len(used))
	}
	for _, m := range used {
		name := metrics.DefaultNamespace + "_" + m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && reg.names[base] {
				name = base
			}
		}
		if !reg.names[name] {
			t.Errorf("dashboard queries %s, which the metrics middleware does not export", name)
		}
	}
}
