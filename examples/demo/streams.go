package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
)

// streams shows a durable stream: the first instance takes an order and
// dies in the middle of it (its handler never returns nil, its
// subscription ends), and the second, in the same group, finishes the
// order once it has been pending for the claim time, with its delivery
// count.
func (d *demo) streams(ctx context.Context) error {
	if len(d.insts) < 2 {
		d.p.say("streams: skipped (needs two instances)")
		return nil
	}
	stream := "demo:orders:" + d.truthKey[len(d.truthKey)-8:]
	first, second := d.insts[0], d.insts[1]
	const claim = 200 * time.Millisecond

	took := make(chan coord.StreamEntry, 1)
	dead, kill := context.WithCancel(ctx)
	defer kill()
	sub1, err := first.b.Streams().Consume(dead, stream, "workers", func(hctx context.Context, e coord.StreamEntry) error {
		took <- e
		<-hctx.Done() // the instance dies mid-entry
		return hctx.Err()
	}, coord.ConsumerName(first.name), coord.ClaimAfter(claim))
	if err != nil {
		return err
	}
	id, err := first.b.Streams().Append(ctx, stream, map[string]string{"order": "A-1042", "action": "refund"})
	if err != nil {
		return err
	}
	d.p.say("streams: %s appended order A-1042 to %s as entry %s", first.name, stream, id)
	select {
	case e := <-took:
		d.p.say("streams: %s took entry %s (delivery %d) and is killed before finishing it", first.name, e.ID, e.Deliveries)
	case <-ctx.Done():
		return ctx.Err()
	}
	kill()
	<-sub1.Done()

	finished := make(chan coord.StreamEntry, 1)
	sub2, err := second.b.Streams().Consume(ctx, stream, "workers", func(_ context.Context, e coord.StreamEntry) error {
		finished <- e
		return nil
	}, coord.ConsumerName(second.name), coord.ClaimAfter(claim))
	if err != nil {
		return err
	}
	defer func() { sub2.Unsubscribe(); <-sub2.Done() }()
	select {
	case e := <-finished:
		d.p.say("streams: %s claimed entry %s after %v pending and finished it (delivery %d, payload %s)", second.name, e.ID, claim, e.Deliveries, e.Payload)
	case <-time.After(10 * claim):
		return errors.New("streams: the abandoned entry was not claimed")
	case <-ctx.Done():
		return ctx.Err()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, err := second.b.Streams().Info(ctx, stream)
		if err != nil {
			return err
		}
		if len(in.Groups) == 1 && in.Groups[0].Pending == 0 {
			d.p.say("streams: group %q: %d pending, lag %d: the order was handled, once to the end", in.Groups[0].Name, in.Groups[0].Pending, in.Groups[0].Lag)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("streams: the entry is still pending: %+v", in.Groups)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
