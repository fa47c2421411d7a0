package redis

import (
	"embed"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// scripts are the Lua scripts the backend runs. Each runs with EVALSHA and
// falls back to EVAL when the server does not have it cached
// ([goredis.Script.Run]).
type scripts struct {
	lockAcquire, lockRelease, lockHandoff, lockExtend, lockTTL, lockForce, lockLocked *goredis.Script

	lockLeave *goredis.Script // lua/lock_leave.lua, with lua/lock_queue.lua

	sessCreate, sessTouch, sessExtend, sessUpdate, sessDelete *goredis.Script
	sessRotate, sessRemove, sessCount, sessStats              *goredis.Script
	sessGet                                                   *goredis.Script

	jobDue, jobRecord *goredis.Script

	// Read-write leases, permits and leaderships (lease_now.lua and
	// lock_lib.lua prepended).
	rwRLock, rwLock, rwCancel, rwForce, rwState *goredis.Script
	semAcquire, semCount, semForce, semHandoff  *goredis.Script
	zRelease, zExtend, zTTL                     *goredis.Script // read leases and permits
	sRelease, sExtend, sTTL                     *goredis.Script // write leases
	electCampaign, electRelease, electExtend    *goredis.Script
	electTTL, electLeader, electForce           *goredis.Script
}

func mustLua(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("coord/redis: missing embedded script " + name) // a build error, not a runtime one
	}
	return string(b)
}

// loadScripts returns the scripts. They are immutable and could be shared;
// each Backend makes its own to keep no package state.
func loadScripts() *scripts {
	lib := mustLua("session_lib") + "\n"
	sess := func(name string) *goredis.Script { return goredis.NewScript(lib + mustLua(name)) }
	lockLib := mustLua("lock_lib") + "\n"
	lockQueue := mustLua("lock_queue") + "\n"
	leaseLib := lockLib + mustLua("lease_now") + "\n"
	lease := func(name string) *goredis.Script { return goredis.NewScript(leaseLib + mustLua(name)) }
	return &scripts{
		rwRLock:       lease("rw_rlock"),
		rwLock:        lease("rw_lock"),
		rwCancel:      lease("rw_cancel"),
		rwForce:       lease("rw_force"),
		rwState:       lease("rw_state"),
		semAcquire:    lease("sem_acquire"),
		semCount:      lease("sem_count"),
		semForce:      lease("sem_force"),
		semHandoff:    lease("sem_handoff"),
		zRelease:      lease("zlease_release"),
		zExtend:       lease("zlease_extend"),
		zTTL:          lease("zlease_ttl"),
		sRelease:      lease("slease_release"),
		sExtend:       lease("slease_extend"),
		sTTL:          lease("slease_ttl"),
		electCampaign: lease("elect_campaign"),
		electRelease:  lease("elect_release"),
		electExtend:   lease("elect_extend"),
		electTTL:      lease("elect_ttl"),
		electLeader:   lease("elect_leader"),
		electForce:    lease("elect_force"),
		lockAcquire:   goredis.NewScript(lockLib + lockQueue + mustLua("lock_acquire")),
		lockRelease:   goredis.NewScript(lockQueue + mustLua("lock_release")),
		lockHandoff:   goredis.NewScript(lockLib + lockQueue + mustLua("lock_handoff")),
		lockLeave:     goredis.NewScript(lockQueue + mustLua("lock_leave")),
		lockExtend:    goredis.NewScript(mustLua("lock_extend")),
		lockTTL:       goredis.NewScript(mustLua("lock_ttl")),
		lockForce:     goredis.NewScript(mustLua("lock_force")),
		lockLocked:    goredis.NewScript(mustLua("lock_locked")),
		sessCreate:    sess("session_create"),
		sessTouch:     sess("session_touch"),
		sessExtend:    sess("session_extend"),
		sessUpdate:    sess("session_update"),
		sessDelete:    sess("session_delete"),
		sessRotate:    sess("session_rotate"),
		sessRemove:    sess("session_remove"),
		sessCount:     sess("session_count"),
		sessStats:     sess("session_stats"),
		sessGet:       sess("session_get"),
		jobDue:        goredis.NewScript(mustLua("job_due")),
		jobRecord:     goredis.NewScript(mustLua("job_record")),
	}
}
