// bulwark: the gateway's command line. Subcommands dispatch to their modules.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "app/governance_cli.hpp"
#include "app/route_cli.hpp"
#include "config/config.hpp"
#include "pipeline/runtime.hpp"
#include "server/server.hpp"

namespace {

constexpr const char* kUsage = R"(bulwark - a resilient, fast LLM gateway

Usage:
  bulwark serve --config FILE [--workers N] [--listen HOST:PORT]
      Run the gateway. SIGTERM/SIGINT drain and stop; SIGHUP reloads FILE.
  bulwark check-config FILE
      Validate a configuration; print every error with its line and column.
  bulwark route score --config FILE --model NAME [--objective OBJ]
  bulwark route explain --config FILE --model NAME [--objective OBJ] [--top K] [PROMPT]
      Run a routed model's policy offline (bulwark route --help for details).
  bulwark --version
  bulwark --help

Environment variables referenced as ${NAME} or ${NAME:-default} in FILE are expanded.
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "bulwark: %s\n\n%s", msg.c_str(), kUsage);
  return 2;
}

int check_config(const std::string& path) {
  auto cfg = bulwark::config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::fprintf(stderr, "%s\n", e.to_string(path).c_str());
    std::fprintf(stderr, "%zu error(s)\n", cfg.error().size());
    return 1;
  }
  auto rt = bulwark::pipeline::Runtime::build(*cfg);
  if (!rt) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), rt.error().message.c_str());
    return 1;
  }
  std::printf("%s: OK (%zu providers, %zu models)\n", path.c_str(), (*cfg)->providers.size(), (*cfg)->models.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return usage_error("missing command");
  const std::string_view cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    std::fputs(bulwark::app::kGovernanceUsage, stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("bulwark %s\n", BULWARK_VERSION);
    return 0;
  }
  if (cmd == "check-config") {
    if (args.size() != 2) return usage_error("check-config takes one FILE");
    return check_config(std::string(args[1]));
  }
  if (cmd == "keys" || cmd == "teams" || cmd == "spend" || cmd == "audit") return bulwark::app::governance_command(args);
  if (cmd == "route") {
    if (args.size() >= 2 && (args[1] == "--help" || args[1] == "-h")) {
      std::fputs(bulwark::app::kRouteUsage, stdout);
      return 0;
    }
    return bulwark::app::route_command(std::span(args).subspan(1), std::cin, std::cout, std::cerr);
  }
  if (cmd == "serve") {
    bulwark::server::ServeOptions opts;
    for (std::size_t i = 1; i < args.size(); ++i) {
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) return {};
        return std::string(args[++i]);
      };
      if (args[i] == "--config") opts.config_path = value();
      else if (args[i] == "--workers") {
        const std::string v = value();
        char* end = nullptr;
        const long n = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end || n < 1 || n > 256) return usage_error("--workers takes a number from 1 to 256");
        opts.workers = static_cast<unsigned>(n);
      } else if (args[i] == "--listen") {
        opts.listen_override = value();
        if (opts.listen_override.find(':') == std::string::npos) return usage_error("--listen takes HOST:PORT");
      } else return usage_error("unknown option " + std::string(args[i]));
    }
    if (opts.config_path.empty()) return usage_error("serve needs --config FILE");
    return bulwark::server::serve(opts);
  }
  return usage_error("unknown command " + std::string(cmd));
}
