#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <memory>
#include <string>

#include "pipeline/downstream.hpp"
#include "pipeline/runtime.hpp"
#include "pipeline/worker.hpp"

namespace bulwark::auth {
class KeyMemo;
}

namespace bulwark::pipeline {

struct IncomingRequest {
  std::string body;
  std::string request_id;
  std::chrono::steady_clock::time_point received;
  // The caller's headers (credentials, per-request options); they outlive the handler.
  const boost::beast::http::fields* headers = nullptr;
  // The connection's memo of the key it last authenticated with (auth::KeyMemo); null:
  // every request is resolved in full.
  auth::KeyMemo* key_memo = nullptr;
};

// Runs one OpenAI chat completion request through the pipeline's phases (see chat.cpp)
// and answers it on downstream. Never throws: every failure becomes an answer.
boost::asio::awaitable<void> handle_chat_completion(std::shared_ptr<const Runtime> runtime, Worker& worker,
                                                    IncomingRequest request, Downstream& downstream);

}  // namespace bulwark::pipeline
