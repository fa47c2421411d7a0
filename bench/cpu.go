package main

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// cpuMeter measures the CPU time this process and the redis-server spend
// on one cell, to give CPU per operation on each side: on a small machine
// where client and server share the cores, throughput follows CPU.
type cpuMeter struct {
	admin *goredis.Client
}

type cpuMark struct {
	proc, server time.Duration
	ok           bool
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU reads used_cpu_user + used_cpu_sys of INFO cpu.
func (c cpuMeter) serverCPU(ctx context.Context) (time.Duration, bool) {
	info, err := c.admin.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	var total float64
	n := 0
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false
			}
			total += f
			n++
		}
	}
	return time.Duration(total * float64(time.Second)), n == 2
}

func (c cpuMeter) mark(ctx context.Context) cpuMark {
	s, ok := c.serverCPU(ctx)
	return cpuMark{proc: procCPU(), server: s, ok: ok}
}

// add puts "client µs/op" and "redis µs/op" into m for ops operations
// done since start.
func (c cpuMeter) add(ctx context.Context, m metrics, start cpuMark, ops float64) {
	if ops <= 0 {
		return
	}
	end := c.mark(ctx)
	m["client µs/op"] = float64(end.proc-start.proc) / float64(time.Microsecond) / ops
	if start.ok && end.ok {
		m["redis µs/op"] = float64(end.server-start.server) / float64(time.Microsecond) / ops
	}
}
