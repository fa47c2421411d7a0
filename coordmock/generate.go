package coordmock

//go:generate go tool mockgen -typed -write_command_comment=false -write_package_comment=false -self_package=github.com/cgn-bot/coord/coordmock -package=coordmock -destination=mocks.go github.com/cgn-bot/coord Backend,Locker,Lock,SessionStore,Invalidator,EventBus,Subscription,Aser,RWLocker,Semaphores,Elector,Leadership,Jobs,RateLimiter,Streams
