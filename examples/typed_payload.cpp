// Typed payloads: any msgpack-adaptable type travels as a task.
//
//   typed_payload --redis redis://127.0.0.1:6379

#include <cstdio>
#include <cstring>
#include <streamfleet/streamfleet.hpp>

struct Order {
    std::string customer;
    std::vector<std::string> items;
    double total = 0;
    MSGPACK_DEFINE_MAP(customer, items, total)
};

int main(int argc, char** argv) {
    std::string redis =
        argc == 3 && std::strcmp(argv[1], "--redis") == 0 ? argv[2] : "redis://127.0.0.1:6379";
    try {
        streamfleet::Server server({.redis = redis, .id = "typed-worker", .concurrency = 2});
        server.handle("orders", [](streamfleet::TaskContext& task) {
            auto order =
                task.as<Order>();  // throws InvalidArgument (→ task failure) if it is not an Order
            std::printf("order for %s: %zu items, %.2f\n", order.customer.c_str(),
                        order.items.size(), order.total);
        });
        server.start();
        streamfleet::Client client({.redis = redis}, {"orders"});
        auto h = client.enqueue_tracked("orders", Order{"ada", {"tea", "scones"}, 12.5});
        auto out = h.wait_for(std::chrono::seconds(10));
        client.close();
        server.shutdown();
        return out && out->status == streamfleet::TaskStatus::completed ? 0 : 1;
    } catch (const streamfleet::Error& e) {
        std::fprintf(stderr, "typed_payload: %s\n", e.what());
        return 1;
    }
}
