# Render a Foreman template outside Foreman, for CI: host_param comes from a
# JSON object of sample host parameters, snippet(name) renders
# foreman-<name with _ as ->.erb next to the template.
#
#   ruby render.rb TEMPLATE.erb PARAMS.json
require 'erb'
require 'json'

class FakeForeman
  def initialize(dir, params)
    @dir = dir
    @params = params
  end

  # Foreman returns nil for a parameter that is not set.
  def host_param(name)
    @params[name]
  end

  def snippet(name)
    render(File.join(@dir, "foreman-#{name.tr('_', '-')}.erb"))
  end

  def render(path)
    ERB.new(File.read(path), trim_mode: '-').result(binding)
  end
end

template, params = ARGV
abort 'usage: render.rb TEMPLATE.erb PARAMS.json' unless template && params
print FakeForeman.new(File.dirname(template), JSON.parse(File.read(params))).render(template)
