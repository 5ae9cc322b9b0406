#include "telemetry/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace t = bulwark::telemetry;

TEST(Metrics, SumsShardsAndRendersPrometheusText) {
  t::Registry reg(2);
  reg.shard(0).inc(t::CounterId::requests, t::label_key({"gpt-4o", "200"}));
  reg.shard(1).inc(t::CounterId::requests, t::label_key({"gpt-4o", "200"}), 2);
  reg.shard(1).inc(t::CounterId::requests, t::label_key({"gpt-4o", "503"}));
  reg.shard(0).observe(t::HistogramId::request_duration, "gpt-4o", 0.003);
  reg.shard(1).observe(t::HistogramId::request_duration, "gpt-4o", 7.0);
  reg.shard(0).add(t::GaugeId::in_flight, 3);
  reg.shard(1).add(t::GaugeId::in_flight, -1);
  const std::string out = reg.render();
  EXPECT_NE(out.find("bulwark_requests_total{model=\"gpt-4o\",status=\"200\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("bulwark_requests_total{model=\"gpt-4o\",status=\"503\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("# TYPE bulwark_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(out.find("bulwark_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.0025\"} 0\n"), std::string::npos);
  EXPECT_NE(out.find("bulwark_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("bulwark_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"10\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("bulwark_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("bulwark_request_duration_seconds_count{model=\"gpt-4o\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("bulwark_in_flight_requests 2\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) {
  t::Registry reg(1);
  reg.shard(0).inc(t::CounterId::requests, t::label_key({"we\"ird\\", "200"}));
  EXPECT_NE(reg.render().find("model=\"we\\\"ird\\\\\""), std::string::npos);
}

TEST(Metrics, ScrapingWhileWorkersCountLosesNothing) {
  t::Registry reg(2);
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop) (void)reg.render();
  });
  std::thread w0([&] { for (int i = 0; i < 20000; ++i) reg.shard(0).inc(t::CounterId::requests, t::label_key({"m" + std::to_string(i % 50), "200"})); });
  std::thread w1([&] { for (int i = 0; i < 20000; ++i) reg.shard(1).inc(t::CounterId::requests, t::label_key({"m" + std::to_string(i % 50), "200"})); });
  w0.join();
  w1.join();
  stop = true;
  scraper.join();
  EXPECT_NE(reg.render().find("bulwark_requests_total{model=\"m7\",status=\"200\"} 800\n"), std::string::npos);
}
