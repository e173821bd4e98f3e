// Shows: the C API from C++: RAII handles (std::unique_ptr with the _free functions) and a callback subscription whose context is a C++ object.
// Run:   c++ -std=c++17 pubsub.cpp $(pkg-config --cflags --libs netchan) -o pubsub_cpp && ./pubsub_cpp
// Prints: "got 100 messages in order", then "done".
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "netchan.h"

namespace {

struct EndpointFree {
    void operator()(netchan_endpoint *p) const { netchan_endpoint_free(p); }
};
struct SubscriptionFree {
    void operator()(netchan_subscription *p) const { netchan_subscription_free(p); }
};
struct StringFree {
    void operator()(char *p) const { netchan_string_free(p); }
};
using Endpoint = std::unique_ptr<netchan_endpoint, EndpointFree>;
using Subscription = std::unique_ptr<netchan_subscription, SubscriptionFree>;
using String = std::unique_ptr<char, StringFree>;

void check(netchan_result rc, const char *what) {
    if (rc != NETCHAN_RESULT_OK)
        throw std::runtime_error(std::string(what) + ": " + netchan_result_name(rc) + " (" +
                                 netchan_last_error() + ")");
}

// State shared with the callback. Callbacks must not throw: record instead.
struct Counter {
    std::mutex mu;
    std::condition_variable cv;
    long count = 0;
    bool in_order = true;
    bool dropped = false;

    static void on_message(void *context, const netchan_message *m) noexcept {
        auto *self = static_cast<Counter *>(context);
        netchan_slice p = netchan_message_payload(m);
        long v = -1;
        if (p.len == sizeof v) std::memcpy(&v, p.data, sizeof v);
        std::lock_guard<std::mutex> g(self->mu);
        if (v != self->count) self->in_order = false;
        self->count++;
        self->cv.notify_all();
    }
    static void on_drop(void *context) noexcept {
        auto *self = static_cast<Counter *>(context);
        std::lock_guard<std::mutex> g(self->mu);
        self->dropped = true;
    }
};

int run() {
    constexpr long n = 100;
    Counter counter;
    {
        netchan_endpoint *raw = nullptr;
        check(netchan_endpoint_new(nullptr, &raw), "new");
        Endpoint sub_ep(raw);
        check(netchan_endpoint_new(nullptr, &raw), "new");
        Endpoint pub_ep(raw);

        netchan_message_callback cb = {&counter, Counter::on_message, Counter::on_drop};
        netchan_subscription *s = nullptr;
        check(netchan_endpoint_subscribe_callback(sub_ep.get(), "numbers/*", nullptr, cb, &s), "subscribe");
        Subscription sub(s);

        char *a = nullptr;
        check(netchan_endpoint_listen(sub_ep.get(), "tcp://127.0.0.1:0", &a), "listen");
        String addr(a);
        check(netchan_endpoint_connect(pub_ep.get(), addr.get(), nullptr), "connect");
        for (long i = 0; i < n; i++)
            check(netchan_endpoint_publish(pub_ep.get(), "numbers/seq", reinterpret_cast<const uint8_t *>(&i), sizeof i),
                  "publish");

        std::unique_lock<std::mutex> lock(counter.mu);
        if (!counter.cv.wait_for(lock, std::chrono::seconds(10), [&] { return counter.count >= n; }))
            throw std::runtime_error("timed out waiting for messages");
        if (!counter.in_order) throw std::runtime_error("messages out of order");
        std::printf("got %ld messages in order\n", counter.count);
    } // sub, then the endpoints, are freed here: drop has run
    if (!counter.dropped) throw std::runtime_error("drop did not run");
    std::printf("done\n");
    return 0;
}

} // namespace

int main() {
    int status = 1;
    try {
        status = run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    netchan_runtime_shutdown(5000);
    return status;
}
