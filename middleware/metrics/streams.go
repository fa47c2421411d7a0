package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// maxWatchedStreams bounds the streams whose Info a scrape reads.
const maxWatchedStreams = 64

// streamMetrics are the stream counters and the scrape-time collector of
// the state of the consumed streams (pending, lag, dead letters, entries
// trimmed while pending), read with Info.
type streamMetrics struct {
	label func(string) string // from Options.EventLabel; nil: AllLabel

	appended, delivered, acked, redelivered, failed *prometheus.CounterVec

	pendingDesc, lagDesc, oldestDesc, deadDesc, trimmedDesc *prometheus.Desc

	mu      sync.Mutex
	watched map[watchKey]struct{}
}

type watchKey struct {
	s      coord.Streams
	stream string
}

func newStreamMetrics(r *registrar, ns string, label func(string) string) *streamMetrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, []string{"stream"}))
	}
	sm := &streamMetrics{
		label:       label,
		appended:    vec("stream_entries_appended_total", "Entries appended, by stream."),
		delivered:   vec("stream_entries_delivered_total", "Entries delivered to handlers (first deliveries and redeliveries), by stream."),
		acked:       vec("stream_entries_acked_total", "Entries whose handler succeeded (acknowledged), by stream."),
		redelivered: vec("stream_entries_redelivered_total", "Entries delivered again after a failure or a lost consumer, by stream."),
		failed:      vec("stream_handler_failures_total", "Handler errors and panics (the entry stays pending), by stream."),
		pendingDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "stream_pending_entries"), "Entries delivered and not acknowledged, by stream and group (read at scrape).", []string{"stream", "group"}, nil),
		lagDesc:     prometheus.NewDesc(prometheus.BuildFQName(ns, "", "stream_lag_entries"), "Entries not yet delivered to the group, by stream and group (read at scrape).", []string{"stream", "group"}, nil),
		oldestDesc:  prometheus.NewDesc(prometheus.BuildFQName(ns, "", "stream_oldest_pending_seconds"), "How long the oldest pending entry has waited, by stream and group (read at scrape).", []string{"stream", "group"}, nil),
		deadDesc:    prometheus.NewDesc(prometheus.BuildFQName(ns, "", "stream_dead_letters"), "Dead-lettered entries kept, by stream (read at scrape).", []string{"stream"}, nil),
		trimmedDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "stream_trimmed_while_pending_total"), "Entries found trimmed while a group still had them pending, by stream (read at scrape).", []string{"stream"}, nil),
		watched:     make(map[watchKey]struct{}),
	}
	sm = register(r, sm)
	if label == nil {
		// Every stream maps to AllLabel: its series exist from the start.
		for _, v := range []*prometheus.CounterVec{sm.appended, sm.delivered, sm.acked, sm.redelivered, sm.failed} {
			v.WithLabelValues(AllLabel)
		}
	}
	return sm
}

func (sm *streamMetrics) labelOf(name string) string {
	if sm.label == nil {
		return AllLabel
	}
	return sm.label(name)
}

// watch adds stream to the streams a scrape reads the Info of.
func (sm *streamMetrics) watch(s coord.Streams, stream string) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if len(sm.watched) < maxWatchedStreams {
		sm.watched[watchKey{s, stream}] = struct{}{}
	}
}

// Describe sends the descriptors of the scrape-time metrics.
func (sm *streamMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- sm.pendingDesc
	ch <- sm.lagDesc
	ch <- sm.oldestDesc
	ch <- sm.deadDesc
	ch <- sm.trimmedDesc
}

// Collect reads the Info of the watched streams, summed by label; a
// stream whose backend closed is no longer watched.
func (sm *streamMetrics) Collect(ch chan<- prometheus.Metric) {
	sm.mu.Lock()
	keys := make([]watchKey, 0, len(sm.watched))
	for k := range sm.watched {
		keys = append(keys, k)
	}
	sm.mu.Unlock()
	type gk struct{ stream, group string }
	pending, lag, oldest := map[gk]float64{}, map[gk]float64{}, map[gk]float64{}
	dead, trimmed := map[string]float64{}, map[string]float64{}
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		in, err := k.s.Info(ctx, k.stream)
		cancel()
		if errors.Is(err, coord.ErrClosed) {
			sm.mu.Lock()
			delete(sm.watched, k)
			sm.mu.Unlock()
			continue
		}
		if err != nil {
			continue
		}
		sl := sm.labelOf(k.stream)
		dead[sl] += float64(in.DeadLetters)
		trimmed[sl] += float64(in.TrimmedWhilePending)
		for _, g := range in.Groups {
			key := gk{sl, sm.labelOf(g.Name)}
			pending[key] += float64(g.Pending)
			lag[key] += float64(g.Lag)
			oldest[key] = max(oldest[key], g.OldestPending.Seconds())
		}
	}
	for k, v := range pending {
		ch <- prometheus.MustNewConstMetric(sm.pendingDesc, prometheus.GaugeValue, v, k.stream, k.group)
		ch <- prometheus.MustNewConstMetric(sm.lagDesc, prometheus.GaugeValue, lag[k], k.stream, k.group)
		ch <- prometheus.MustNewConstMetric(sm.oldestDesc, prometheus.GaugeValue, oldest[k], k.stream, k.group)
	}
	for s, v := range dead {
		ch <- prometheus.MustNewConstMetric(sm.deadDesc, prometheus.GaugeValue, v, s)
		ch <- prometheus.MustNewConstMetric(sm.trimmedDesc, prometheus.CounterValue, trimmed[s], s)
	}
}

// Streams decorates next with metrics: operation latency and errors,
// stream_entries_appended_total, and, through the handlers of its
// subscriptions, stream_entries_delivered_total, _acked_total,
// _redelivered_total and stream_handler_failures_total; the streams it
// consumes have their pending entries, lag, oldest pending age, dead
// letters and entries trimmed while pending read at each scrape. The
// stream and group labels come from [Options.EventLabel]. A nil m or next
// gives next unchanged.
func (m *Middleware) Streams(next coord.Streams) coord.Streams {
	if m == nil || next == nil {
		return next
	}
	return &streams{m: m, next: next}
}

type streams struct {
	m    *Middleware
	next coord.Streams
}

var _ coord.Streams = (*streams)(nil)

// Unwrap returns the decorated Streams.
func (s *streams) Unwrap() coord.Streams { return s.next }

// As forwards to the decorated Streams (see coord.As).
func (s *streams) As(target any) bool { return coord.As(s.next, target) }

func (s *streams) Append(ctx context.Context, stream string, payload any) (id string, err error) {
	defer s.m.done(obs.StreamAppend, s.m.clock.Now(), &err)
	id, err = s.next.Append(ctx, stream, payload)
	if err == nil {
		sm := s.m.streams
		sm.appended.WithLabelValues(sm.labelOf(stream)).Inc()
	}
	return id, err
}

func (s *streams) Consume(ctx context.Context, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) (sub coord.Subscription, err error) {
	defer s.m.done(obs.StreamConsume, s.m.clock.Now(), &err)
	if fn == nil {
		return s.next.Consume(ctx, stream, group, fn, opts...) // the backend refuses it
	}
	sm := s.m.streams
	l := sm.labelOf(stream)
	delivered, acked := sm.delivered.WithLabelValues(l), sm.acked.WithLabelValues(l)
	redelivered, failed := sm.redelivered.WithLabelValues(l), sm.failed.WithLabelValues(l)
	sub, err = s.next.Consume(ctx, stream, group, func(ctx context.Context, e coord.StreamEntry) error {
		delivered.Inc()
		if e.Deliveries > 1 {
			redelivered.Inc()
		}
		ok := false
		defer func() {
			if ok {
				acked.Inc()
			} else {
				failed.Inc() // an error, or a panic on its way up
			}
		}()
		err := fn(ctx, e)
		ok = err == nil
		return err
	}, opts...)
	if err == nil {
		sm.watch(s.next, stream)
	}
	return sub, err
}

func (s *streams) Range(ctx context.Context, stream, from string, count int) (es []coord.StreamEntry, err error) {
	defer s.m.done(obs.StreamRange, s.m.clock.Now(), &err)
	return s.next.Range(ctx, stream, from, count)
}

func (s *streams) Info(ctx context.Context, stream string) (in coord.StreamInfo, err error) {
	defer s.m.done(obs.StreamInfo, s.m.clock.Now(), &err)
	return s.next.Info(ctx, stream)
}

func (s *streams) DeadLetters(ctx context.Context, stream string, count int) (es []coord.StreamEntry, err error) {
	defer s.m.done(obs.StreamDeadLetters, s.m.clock.Now(), &err)
	return s.next.DeadLetters(ctx, stream, count)
}

func (s *streams) Trim(ctx context.Context, stream string, r coord.Retention) (n int64, err error) {
	defer s.m.done(obs.StreamTrim, s.m.clock.Now(), &err)
	return s.next.Trim(ctx, stream, r)
}
