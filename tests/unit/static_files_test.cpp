#include "orch/api/static_files.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace orch::api;
namespace fs = std::filesystem;

namespace {

// A scratch folder, removed at the end of the test.
struct scratch {
  fs::path dir;

  scratch() {
    std::string tmpl = (fs::temp_directory_path() / "orch-static-XXXXXX");
    dir = ::mkdtemp(tmpl.data());
  }

  ~scratch() {
    std::error_code err;
    fs::remove_all(dir, err);
  }

  void write(const std::string& name, const std::string& body) {
    std::ofstream{dir / name, std::ios::binary} << body;
  }
};

} // namespace

TEST(static_files, the_dashboard_is_embedded_with_its_types) {
  auto* html = ui_file("index.html");
  ASSERT_NE(html, nullptr);
  EXPECT_EQ(html->content_type, "text/html; charset=utf-8");
  EXPECT_NE(html->body.find("/ui/app.js"), std::string::npos);
  auto* js = ui_file("app.js");
  ASSERT_NE(js, nullptr);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  ASSERT_NE(ui_file("app.css"), nullptr);
  EXPECT_EQ(ui_file("app.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(ui_file("missing.js"), nullptr);
  EXPECT_EQ(ui_file("../index.html"), nullptr);
}

TEST(static_files, the_dashboard_loads_nothing_from_elsewhere) {
  for (auto name : {"index.html", "app.js", "app.css"}) {
    auto* f = ui_file(name);
    ASSERT_NE(f, nullptr) << name;
    // No absolute URL, except the SVG namespace (an identifier, never
    // fetched).
    auto body = f->body;
    const std::string svg_ns = "http://www.w3.org/2000/svg";
    for (auto i = body.find(svg_ns); i != std::string::npos;
         i = body.find(svg_ns))
      body.erase(i, svg_ns.size());
    EXPECT_EQ(body.find("http://"), std::string::npos) << name;
    EXPECT_EQ(body.find("https://"), std::string::npos) << name;
    EXPECT_EQ(body.find("//cdn"), std::string::npos) << name;
    EXPECT_NE(f->content_security_policy.find("default-src 'none'"),
              std::string::npos);
    EXPECT_EQ(f->cache_control, "no-cache");
    EXPECT_EQ(f->etag.front(), '"');
    EXPECT_EQ(f->etag.back(), '"');
  }
  // User data goes in as text, never as markup.
  EXPECT_EQ(ui_file("app.js")->body.find(".innerHTML ="), std::string::npos);
  EXPECT_EQ(ui_file("app.js")->body.find("insertAdjacentHTML"),
            std::string::npos);
}

TEST(static_files, plain_file_names_only) {
  EXPECT_TRUE(is_plain_file_name("swagger-ui-bundle.js"));
  EXPECT_TRUE(is_plain_file_name("LICENSE"));
  EXPECT_FALSE(is_plain_file_name(""));
  EXPECT_FALSE(is_plain_file_name(".stamp"));
  EXPECT_FALSE(is_plain_file_name(".."));
  EXPECT_FALSE(is_plain_file_name("a/b.js"));
  EXPECT_FALSE(is_plain_file_name("a\\b.js"));
  EXPECT_FALSE(is_plain_file_name(std::string("a\0b", 3)));
  EXPECT_FALSE(is_plain_file_name(std::string(129, 'a')));
}

TEST(static_files, media_types) {
  EXPECT_EQ(static_media_type("x.PNG"), "image/png");
  EXPECT_EQ(static_media_type("x.js.map"), "application/json");
  EXPECT_EQ(static_media_type("NOTICE"), "text/plain; charset=utf-8");
  EXPECT_EQ(static_media_type("x.bin"), "application/octet-stream");
}

TEST(static_files, docs_come_from_a_swagger_ui_folder) {
  scratch s;
  s.write("swagger-ui-bundle.js", "var SwaggerUIBundle;");
  s.write("swagger-ui.css", "body{}");
  s.write(".hidden", "secret");
  docs_site docs{s.dir.string()};
  EXPECT_EQ(docs.dir(), s.dir.string());
  // Our page, not the package's demo, and our init script.
  auto index = docs.get("index.html");
  ASSERT_NE(index, nullptr);
  EXPECT_NE(index->body.find("/docs/swagger-ui-bundle.js"), std::string::npos);
  EXPECT_NE(index->body.find("/docs/init.js"), std::string::npos);
  ASSERT_NE(docs.get("init.js"), nullptr);
  EXPECT_NE(docs.get("init.js")->body.find("/openapi.json"),
            std::string::npos);
  auto bundle = docs.get("swagger-ui-bundle.js");
  ASSERT_NE(bundle, nullptr);
  EXPECT_EQ(bundle->body, "var SwaggerUIBundle;");
  EXPECT_EQ(bundle->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(docs.get(".hidden"), nullptr);
  EXPECT_EQ(docs.get("../etc/passwd"), nullptr);
  EXPECT_EQ(docs.get("missing.js"), nullptr);
  // Read once: the same object on the second call.
  EXPECT_EQ(docs.get("swagger-ui-bundle.js"), bundle);
}

TEST(static_files, docs_without_swagger_ui_list_the_routes) {
  scratch s; // empty: no swagger-ui-bundle.js
  docs_site docs{s.dir.string()};
  EXPECT_TRUE(docs.dir().empty());
  auto index = docs.get("index.html");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_NE(index->body.find("/openapi.json"), std::string::npos);
  EXPECT_NE(index->body.find("<code>/jobs/{id}/cancel</code>"),
            std::string::npos);
  EXPECT_EQ(docs.get("swagger-ui-bundle.js"), nullptr);
}

TEST(static_files, the_fallback_page_escapes_the_document) {
  auto page = docs_fallback_page(
    R"({"info": {"title": "<script>x</script>", "version": "1"},
        "paths": {"/a<b>": {"get": {"summary": "\"q\" & 'r'"}}}})",
    "/opt/<dir>");
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;x&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("/a&lt;b&gt;"), std::string::npos);
  EXPECT_NE(page.find("&quot;q&quot; &amp; &#39;r&#39;"), std::string::npos);
  EXPECT_NE(page.find("/opt/&lt;dir&gt;"), std::string::npos);
  // A broken document still gives a page.
  EXPECT_NE(docs_fallback_page("not json", "").find("/openapi.json"),
            std::string::npos);
}
