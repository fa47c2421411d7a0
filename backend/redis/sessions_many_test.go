package redis_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// TestSessionFiveThousandFields: a session of 5000 fields is created
// (several HSETs in the script, the first with the meta fields), merged
// with 5000 changes (new, changed and deleted fields), touched and
// rotated, and every field reads back as written each time.
func TestSessionFiveThousandFields(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "many5k:"})
		want := map[string]string{}
		data := map[string]any{}
		for i := range 5000 {
			k := fmt.Sprintf("k%d", i)
			switch i % 3 {
			case 0:
				data[k] = i
			case 1:
				data[k] = fmt.Sprintf("v%d", i)
			default:
				data[k] = map[string]any{"i": i, "tags": []string{"a", k}}
			}
			raw, err := json.Marshal(data[k])
			if err != nil {
				t.Fatal(err)
			}
			want[k] = string(raw)
		}
		check := func(what string, sess *coord.Session, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if sess.UserID != "u5k" {
				t.Errorf("%s: user %q", what, sess.UserID)
			}
			if len(sess.Data) != len(want) {
				t.Errorf("%s: %d fields, want %d", what, len(sess.Data), len(want))
			}
			bad := 0
			for k, v := range want {
				if got, ok := sess.Data[k]; (!ok || string(got) != v) && bad < 5 {
					t.Errorf("%s: field %q = %q (present %v), want %q", what, k, got, ok, v)
					bad++
				}
			}
		}
		sess, err := b.Sessions().Create(ctx, "u5k", data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Sessions().Get(ctx, sess.ID)
		check("after Create", got, err)

		// 2000 changed, 1500 deleted, 1500 new: 5000 changes in one Update.
		upd := map[string]any{}
		for i := range 2000 {
			k := fmt.Sprintf("k%d", i)
			upd[k] = "changed"
			want[k] = `"changed"`
		}
		for i := 2000; i < 3500; i++ {
			k := fmt.Sprintf("k%d", i)
			upd[k] = nil
			delete(want, k)
		}
		for i := range 1500 {
			k := fmt.Sprintf("n%d", i)
			upd[k] = []int{i, i + 1}
			want[k] = fmt.Sprintf("[%d,%d]", i, i+1)
		}
		if err := b.Sessions().Update(ctx, sess.ID, upd); err != nil {
			t.Fatal(err)
		}
		got, err = b.Sessions().Get(ctx, sess.ID)
		check("after Update", got, err)
		got, err = b.Sessions().Touch(ctx, sess.ID)
		check("Touch", got, err)
		got, err = b.Sessions().Rotate(ctx, sess.ID)
		check("Rotate", got, err)
		got, err = b.Sessions().Get(ctx, got.ID)
		check("Get after Rotate", got, err)
	})
}

// TestSessionNoFields: a session without data has only its meta fields
// (the create script's first HSET holds no data field): user, created,
// last access, expires, deadline, idle TTL, data size and field count.
func TestSessionNoFields(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "nofields:"})
		sess, err := b.Sessions().Create(ctx, "u0", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Sessions().Get(ctx, sess.ID)
		if err != nil || got.UserID != "u0" || len(got.Data) != 0 {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		n, err := rawClient(t, s).HLen(ctx, "nofields:{s}:s:"+sess.Handle).Result()
		if err != nil || n != 8 {
			t.Errorf("the hash has %d fields (%v), want the 8 meta fields", n, err)
		}
	})
}
