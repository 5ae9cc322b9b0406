// bulwark-mock: a fault-injecting fake LLM provider. See docs/mock.md.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "mock/behavior.hpp"
#include "mock/cli.hpp"
#include "mock/engine.hpp"
#include "mock/server.hpp"

int main(int argc, char** argv) {
  using namespace bulwark::mock;
  // Blocked first thing so a stop request during start-up still ends in a clean exit;
  // this thread takes them with sigwait and no worker ever sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cli = parse_cli(args, [](std::string_view name) -> std::optional<std::string> {
    const std::string n(name);
    const char* v = std::getenv(n.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
  if (!cli) {
    std::fprintf(stderr, "bulwark-mock: %s\n\n%.*s", cli.error().message.c_str(),
                 static_cast<int>(usage().size()), usage().data());
    return 2;
  }
  if (cli->help) {
    std::fwrite(usage().data(), 1, usage().size(), stdout);
    return 0;
  }
  if (cli->version) {
    std::printf("bulwark-mock %s\n", BULWARK_VERSION);
    return 0;
  }

  Config config;
  if (cli->config_path) {
    auto loaded = load_config_file(*cli->config_path);
    if (!loaded) {
      std::fprintf(stderr, "bulwark-mock: %s\n", loaded.error().message.c_str());
      return 2;
    }
    config = std::move(*loaded);
  }

  auto& clock = bulwark::SteadyClock::instance();
  Engine engine(std::move(config), clock, cli->seed);
  ServerOptions opts;
  opts.host = cli->host;
  opts.port = cli->port;
  opts.workers = cli->workers;
  opts.api_key = cli->api_key;
  opts.seed = cli->seed;
  if (cli->aws_access_key_id)
    opts.aws_keys = ServerOptions::AwsKeys{*cli->aws_access_key_id, *cli->aws_secret_access_key,
                                           cli->aws_session_token.value_or("")};
  opts.aws_bearer_token = cli->aws_bearer_token;
  opts.aws_region = cli->aws_region;
  Server server(std::move(opts), engine, clock);
  if (auto started = server.start(); !started) {
    std::fprintf(stderr, "bulwark-mock: %s\n", started.error().message.c_str());
    return 1;
  }
  const bool v6 = cli->host.find(':') != std::string::npos;
  std::printf(v6 ? "listening on [%s]:%u\n" : "listening on %s:%u\n", cli->host.c_str(),
              static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.stop();
  return 0;
}
