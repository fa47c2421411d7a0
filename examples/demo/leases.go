package main

import (
	"context"
	"errors"
	"time"

	"github.com/cgn-bot/coord"
)

// leases shows the shapes of lease beside the job's lock: a leader
// elected among the instances and handed over on resignation, a
// semaphore that lets two of three instances call a partner at once, and
// a read-write lock whose writer holds new readers back.
func (d *demo) leases(ctx context.Context) error {
	a, b, c := d.pick(0), d.pick(1), d.pick(2)
	if err := d.election(ctx, a, b); err != nil {
		return err
	}
	if err := d.permits(ctx, a, b, c); err != nil {
		return err
	}
	return d.readWrite(ctx, a, b)
}

// unsupported reports, and forgives, a primitive the backend lacks.
func (d *demo) unsupported(what string, err error) bool {
	if errors.Is(err, coord.ErrUnsupported) {
		d.p.say("%s: this backend does not offer it (%v)", what, err)
		return true
	}
	return false
}

func (d *demo) election(ctx context.Context, a, b *instance) error {
	const name = "demo:scheduler"
	lead, err := a.b.Elector().Campaign(ctx, name, a.name, coord.WithTTL(10*time.Second))
	if d.unsupported("election", err) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := b.b.Elector().Leader(ctx, name)
	if err != nil {
		return err
	}
	d.p.say("election: %s sees %s lead %q with term %d", b.name, info.Identity, name, info.Term)
	next := make(chan coord.Leadership, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := b.b.Elector().Campaign(ctx, name, b.name, coord.WithTTL(10*time.Second), coord.WithWait(time.Second))
		next <- l
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let b queue its campaign
	start := time.Now()
	if err := lead.Release(ctx); err != nil {
		return err
	}
	l := <-next
	if err := <-errc; err != nil {
		return err
	}
	verdict := "higher"
	if l.Fence() <= lead.Fence() {
		verdict = "NOT increasing"
	}
	d.p.say("election: %s resigned; %s leads after %v with term %d (%s: a deposed leader's writes can be fenced)", a.name, l.Identity(), time.Since(start).Round(time.Microsecond), l.Fence(), verdict)
	return l.Release(ctx)
}

func (d *demo) permits(ctx context.Context, a, b, c *instance) error {
	const name = "demo:partner-api"
	var held []coord.Lock
	for _, in := range []*instance{a, b} {
		p, err := in.b.Semaphores().Acquire(ctx, name, 2, coord.WithTTL(10*time.Second))
		if d.unsupported("semaphore", err) {
			return nil
		}
		if err != nil {
			return err
		}
		held = append(held, p)
	}
	_, err := c.b.Semaphores().Acquire(ctx, name, 2, coord.WithRetry(0, 0))
	verdict := "refused, 2 of 2 permits are held"
	if err == nil {
		verdict = "GOT a third permit"
	} else if !errors.Is(err, coord.ErrNotAcquired) {
		return err
	}
	d.p.say("semaphore: %s and %s call the partner API; %s tries too: %s", a.name, b.name, c.name, verdict)
	for _, p := range held {
		if err := p.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) readWrite(ctx context.Context, a, b *instance) error {
	const name = "demo:config"
	r, err := a.b.RWLocker().RLock(ctx, name, coord.WithTTL(10*time.Second))
	if d.unsupported("read-write lock", err) {
		return nil
	}
	if err != nil {
		return err
	}
	written := make(chan error, 1)
	go func() {
		w, err := b.b.RWLocker().Lock(ctx, name, coord.WithTTL(10*time.Second), coord.WithWait(time.Second))
		if err == nil {
			err = w.Release(ctx)
		}
		written <- err
	}()
	waitFor(ctx, func() bool {
		st, err := a.b.RWLocker().State(ctx, name)
		return err != nil || st.WritersWaiting > 0
	})
	_, err = a.b.RWLocker().RLock(ctx, name, coord.WithRetry(0, 0))
	verdict := "waits behind the writer"
	if err == nil {
		verdict = "GOT IN beside a waiting writer"
	} else if !errors.Is(err, coord.ErrNotAcquired) {
		return err
	}
	d.p.say("rwlock: %s reads %q; %s waits to write; a new reader %s", a.name, name, b.name, verdict)
	if err := r.Release(ctx); err != nil {
		return err
	}
	if err := <-written; err != nil {
		return err
	}
	d.p.say("rwlock: the reader left and %s wrote", b.name)
	return nil
}

// waitFor polls cond for up to a second.
func waitFor(ctx context.Context, cond func() bool) {
	deadline := time.Now().Add(time.Second)
	for !cond() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}
