// Webhook ingest: a delivery is verified and parsed by the source's plugin, its events are
// stored in one transaction, and only then answered 2xx. From here the processor takes them
// (processor.cpp): webhook -> store -> processor -> map -> push.
#include <future>
#include <map>

#include <spdlog/spdlog.h>

#include "pipeline/engine.hpp"
#include "pipeline/event_payload.hpp"
#include "util/json.hpp"
#include "util/metrics.hpp"

namespace crmhost::pipeline {

WebhookIngest Engine::ingest_webhook(const std::string &path,
                                     const plugins::WebhookRequest &request,
                                     const std::string &request_id) {
  std::promise<WebhookIngest> promise;
  auto future = promise.get_future();
  ingest_webhook_async(path, request, request_id,
                       [&promise](WebhookIngest result) { promise.set_value(std::move(result)); });
  return future.get();
}

void Engine::ingest_webhook_async(const std::string &path, const plugins::WebhookRequest &request,
                                  const std::string &request_id,
                                  std::function<void(WebhookIngest)> done) {
  // Every pipeline on this path (one connection; each takes its own object). runners_ is a map
  // by name, so the first is the same on every delivery.
  std::vector<std::shared_ptr<PipelineRunner>> runners;
  {
    std::lock_guard lock(mutex_);
    for (const auto &[name, r] : runners_)
      if (r->config().webhook && r->config().webhook->path == path) runners.push_back(r);
  }
  if (runners.empty()) {
    WebhookIngest result;
    result.http_status = 404;
    result.body = "no pipeline receives webhooks at this path";
    return done(std::move(result));
  }
  auto verifier = runners.front();
  // Labelled by path: a delivery to a path that several pipelines share is one delivery (each
  // pipeline's events are counted in crmhost_events_received_total).
  auto finish = [path, done = std::move(done)](WebhookIngest result) {
    const char *outcome = result.http_status == 200   ? (result.events ? "stored" : "duplicate")
                          : result.http_status == 401 ? "unauthorized"
                          : result.http_status == 400 ? "invalid"
                          : result.http_status == 503 ? "unavailable"
                                                      : "error";
    metrics::global().counter_add("crmhost_webhooks_received_total",
                                  "Webhook deliveries received, by path and outcome.",
                                  {{"path", path}, {"outcome", outcome}});
    done(std::move(result));
  };

  // A body nested deep enough to overflow a recursive parser never reaches the plugin: the
  // plugin's fault would take the whole host down.
  if (const auto first = request.body.find_first_not_of(" \t\r\n");
      first != std::string::npos && (request.body[first] == '{' || request.body[first] == '[')) {
    if (const auto at = json::nesting_exceeds(request.body, json::kMaxWebhookJsonDepth)) {
      WebhookIngest result;
      result.http_status = 400;
      result.body = "the JSON body nests deeper than " +
                    std::to_string(json::kMaxWebhookJsonDepth) + " levels (at offset " +
                    std::to_string(*at) + ")";
      return finish(std::move(result));
    }
  }
  // Verification and parsing run here (a plugin call); the commit is awaited without a thread.
  auto parsed = verifier->source()->connector->webhook(request);
  if (!parsed) {
    const auto &e = parsed.error();
    WebhookIngest result;
    result.http_status = e.code == CRM_ERR_UNAUTHORIZED    ? 401
                         : e.code == CRM_ERR_INVALID_INPUT ? 400
                                                           : 500;
    result.body = e.code == CRM_ERR_UNAUTHORIZED ? "" : e.message;  // no detail for a bad signature
    return finish(std::move(result));
  }
  // Each event goes to the pipeline of its object; one delivery is one transaction all the same.
  std::vector<store::NewEvent> events;
  std::vector<PipelineRunner *> owners;  // per event
  size_t ignored = 0;
  for (const auto &event : parsed->events) {
    PipelineRunner *owner = nullptr;
    for (const auto &r : runners)
      if (config::webhook_object(r->config()) == event.object) owner = r.get();
    if (!owner) {
      ++ignored;  // a subscription no pipeline here takes
      continue;
    }
    events.push_back(make_event(owner->config().name, store::EventSource::webhook,
                                owner->config().webhook->connection, payload_from(event),
                                request_id, event.event_id));
    owners.push_back(owner);
  }
  if (ignored)
    spdlog::debug("request {} POST {}: {} event(s) of objects no pipeline on this path takes",
                  request_id, path, ignored);
  {
    std::lock_guard lock(ingest_mutex_);
    ++ingests_in_flight_;
  }
  store_->enqueue_async(std::move(events),
                        [this, runners, owners = std::move(owners), reply = parsed->reply,
                         finish = std::function<void(WebhookIngest)>(std::move(finish))](
                            std::exception_ptr error, store::EnqueueResult outcomes) mutable {
                          answer_ingest(error, outcomes, owners, runners.front()->config().name,
                                        std::move(reply), finish);
                          // What this holds goes before the engine may: the last reference to a
                          // pipeline (and through it the store) must not be dropped here, on the
                          // store's own writer thread.
                          runners.clear();
                          owners.clear();
                          finish = nullptr;
                          std::lock_guard lock(ingest_mutex_);
                          if (--ingests_in_flight_ == 0) ingests_idle_.notify_all();
                        });
}

// The answer to a webhook once its events are committed (or not): counts, wakes, the reply.
void Engine::answer_ingest(std::exception_ptr error, const store::EnqueueResult &outcomes,
                           const std::vector<PipelineRunner *> &owners,
                           const std::string &first_pipeline,
                           std::optional<plugins::WebhookReply> reply,
                           const std::function<void(WebhookIngest)> &finish) {
  WebhookIngest result;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const store::StoreError &e) {
      result.http_status = e.retryable() ? 503 : 500;  // 503: the provider will retry
      result.body = e.retryable() ? "store unavailable" : "store error";
    } catch (const std::exception &e) {
      spdlog::error("webhook enqueue for pipeline {} failed: {}", first_pipeline, e.what());
      result.http_status = 500;
      result.body = "internal error";
    }
    return finish(std::move(result));  // nothing was acknowledged
  }
  std::map<PipelineRunner *, std::pair<size_t, size_t>> per_pipeline;  // new, duplicate
  for (size_t i = 0; i < outcomes.size() && i < owners.size(); ++i) {
    auto &counts = per_pipeline[owners[i]];
    (outcomes[i].duplicate ? counts.second : counts.first)++;
    (outcomes[i].duplicate ? result.duplicates : result.events)++;
  }
  for (const auto &[owner, counts] : per_pipeline) {
    count_received(owner->config().name, "webhook", counts.first, counts.second);
    if (counts.first) owner->wake();
  }
  result.reply = std::move(reply);
  finish(std::move(result));
}

}  // namespace crmhost::pipeline
