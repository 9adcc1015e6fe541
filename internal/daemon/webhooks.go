package daemon

import (
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/version"
)

// JobRegistry returns the job handlers of cfg: the built-ins, and a webhook
// handler for each type of JOB_WEBHOOKS, all delivering through one
// client (its connections kept alive, about WORKER_CONCURRENCY per host),
// signed with JOB_WEBHOOK_SECRET when set. The daemon and the CLI over
// --redis (jobs enqueue, jobs run) build theirs alike.
func JobRegistry(cfg config.Config) (*queue.Registry, *webhook.Client, error) {
	reg := queue.NewRegistry()
	hooks := webhook.New(webhook.Options{
		Secret:           cfg.JobWebhookSecret,
		UserAgent:        "refrakt/" + version.Get().Version,
		IdleConnsPerHost: cfg.WorkerConcurrency,
	})
	if err := hooks.Register(reg, cfg.JobWebhooks); err != nil {
		return nil, nil, &config.Error{Msg: "JOB_WEBHOOKS: " + err.Error()}
	}
	return reg, hooks, nil
}
