package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// TestJobRecordExpires: a job's record is one hash under the prefix, in
// the hash slot of the job's name, that expires when its period ends.
func TestJobRecordExpires(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "jx:"})
		raw := rawClient(t, s)
		const period = 300 * time.Millisecond
		key := "jx:job:{a%7Bb}"
		// Start at the beginning of a period, so the record has most of
		// it to live.
		slot, err := b.Jobs().Due(ctx, "a{b", period)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(slot.Next)
		slot, err = b.Jobs().Due(ctx, "a{b", period)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Jobs().Complete(ctx, "a{b", slot); err != nil {
			t.Fatal(err)
		}
		pttl, err := raw.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > period+time.Millisecond {
			t.Fatalf("PTTL of %s = %v; want a TTL to the period's end, at most %v", key, pttl, period)
		}
		deadline := time.Now().Add(period + 2*time.Second)
		for {
			n, err := raw.Exists(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the record %s is still there %v after its period ended", key, 2*time.Second)
			}
			if s.name == "miniredis" {
				break // miniredis expires keys only when told to
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestJobForeignRecord: a record another writer left, with fields that
// are not numbers, counts as none and is written over; a key of another
// type is an error, never a panic or a false "done".
func TestJobForeignRecord(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "jf:"})
		raw := rawClient(t, s)
		if err := raw.HSet(ctx, "jf:job:{x}", "p", "soon", "i", "1e999", "d", "1", "f", "-7").Err(); err != nil {
			t.Fatal(err)
		}
		slot, err := b.Jobs().Due(ctx, "x", time.Hour)
		if err != nil || slot.Done || slot.Failures != 0 {
			t.Fatalf("Due over a foreign record = %+v, %v; want not done, no failures", slot, err)
		}
		if err := b.Jobs().Fail(ctx, "x", slot); err != nil {
			t.Fatal(err)
		}
		if s2, err := b.Jobs().Due(ctx, "x", time.Hour); err != nil || s2.Failures != 1 || s2.Done {
			t.Fatalf("after Fail over a foreign record, Due = %+v, %v; want 1 failure", s2, err)
		}
		if err := raw.Set(ctx, "jf:job:{y}", "a string", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Jobs().Due(ctx, "y", time.Hour); !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("Due over a string key: %v; want ErrUnavailable", err)
		}
		if err := b.Jobs().Complete(ctx, "y", slot); err == nil {
			t.Error("Complete over a string key succeeded")
		}
		if v, err := raw.Get(ctx, "jf:job:{y}").Result(); err != nil || v != "a string" {
			t.Errorf("the foreign string key was changed: %q, %v", v, err)
		}
	})
}

// TestJobClosed: after Close, every method returns ErrClosed.
func TestJobClosed(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		b := backendOn(t, s, nil)
		ctx := t.Context()
		slot, err := b.Jobs().Due(ctx, "c", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Jobs().Due(ctx, "c", time.Hour); !errors.Is(err, coord.ErrClosed) {
			t.Errorf("Due after Close: %v", err)
		}
		if err := b.Jobs().Complete(ctx, "c", slot); !errors.Is(err, coord.ErrClosed) {
			t.Errorf("Complete after Close: %v", err)
		}
	})
}
